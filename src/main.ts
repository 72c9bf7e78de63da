/**
 * Wiring: config → logger → backends → server, plus process signals. The CLI calls start();
 * tests may call it too, or use createIcapServer directly with their own pieces.
 */
import type { AddressInfo } from 'node:net';
import { closeBackends, createBackends } from './backends/create-backends.js';
import { loadConfigFile, type Config } from './config/index.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createIcapServer, type IcapServer } from './server/icap-server.js';

export interface Running {
  readonly config: Config;
  readonly server: IcapServer;
  readonly addresses: AddressInfo[];
  readonly logger: Logger;
  stop(graceMs?: number): Promise<void>;
}

export async function start(configPath: string): Promise<Running> {
  const config = loadConfigFile(configPath);
  const logger = createLogger({ level: config.logging.level });
  const backends = await createBackends(config);
  const server = createIcapServer(config, { logger, backends });
  let addresses: AddressInfo[];
  try {
    addresses = await server.listen();
  } catch (err) {
    await server.close(0);
    await closeBackends(backends);
    throw err;
  }
  logger.info(
    { config: config.source, services: Object.keys(config.services), backends: [...backends.keys()] },
    'icap-bridge started',
  );
  return {
    config,
    server,
    addresses,
    logger,
    async stop(graceMs = 10_000) {
      await server.close(graceMs);
      await closeBackends(backends);
      logger.info('icap-bridge stopped');
      logger.flush();
    },
  };
}

/** SIGTERM/SIGINT: stop accepting, finish in-flight transactions, exit 0. */
export function handleSignals(running: Running, graceMs = 10_000): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    running.logger.info({ signal }, 'shutting down');
    running.stop(graceMs).then(
      () => process.exit(0),
      (err: unknown) => {
        running.logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
