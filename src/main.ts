/**
 * Wiring: config → logger → backends → server (+ admin listener), and process signals. The CLI
 * calls start(); tests may call it too, or use createIcapServer directly with their own pieces.
 */
import { createBackends, type CreateBackendsOptions } from './backends/create-backends.js';
import type { HeldSignals } from './cluster/startup-signals.js';
import { warnIfProcessesChanged } from './cluster/restart-only.js';
import { loadConfigFile, type Config } from './config/index.js';
import { createAdminServer, type AdminServer } from './observability/admin-server.js';
import { createLogger, flushLogs, LOG_FLUSH_TIMEOUT_MS, setLogLevel, type Logger, type LoggerOptions } from './observability/logger.js';
import { createIcapServer, type BoundListener, type IcapServer } from './server/icap-server.js';

export interface Running {
  readonly server: IcapServer;
  readonly addresses: BoundListener[];
  readonly adminPort: number | null;
  readonly logger: Logger;
  readonly config: Config;
  /**
   * Reloads the configuration file, or switches to `next` when given (a cluster worker: the
   * configuration its primary accepted); on any error the running configuration stays.
   */
  reload(next?: Config): Promise<boolean>;
  stop(graceMs?: number): Promise<void>;
}

export interface AdaptedConfig {
  readonly server: Config;
  readonly backends: Config;
}

/** How start() differs in a cluster worker (src/cluster/worker.ts); the defaults are a lone server. */
export interface StartOptions {
  /** Serve the admin listener here (a cluster's primary serves it instead). Default true. */
  readonly admin?: boolean;
  /** The log line that says the server is up. Default "icap-bridge started". */
  readonly startedMessage?: string;
  /** Fields on every log line (a worker adds its pid). */
  readonly logBindings?: Readonly<Record<string, unknown>>;
  /** Where log lines go; stdout by default. */
  readonly logDestination?: LoggerOptions['destination'];
  /**
   * Adjusts each loaded configuration, at start and on every reload, into the one the server runs
   * and the one its backends are built from (a worker: its own spool directory, and the primary's
   * copies of the files the configuration names, src/cluster/config-files.ts says why two).
   * Default: the configuration as loaded, for both.
   */
  readonly adaptConfig?: (config: Config) => AdaptedConfig;
  /** The configuration already loaded from configPath (the CLI reads server.processes first). */
  readonly config?: Config;
}

export async function start(configPath: string, options: StartOptions = {}): Promise<Running> {
  const adapt = options.adaptConfig ?? ((c: Config): AdaptedConfig => ({ server: c, backends: c }));
  const adapted = adapt(options.config ?? loadConfigFile(configPath));
  const config = adapted.server;
  const rootLogger = createLogger({ level: config.logging.level, ...(options.logDestination && { destination: options.logDestination }) });
  const logger = options.logBindings ? rootLogger.child(options.logBindings) : rootLogger;
  const backendOptions: CreateBackendsOptions = {
    warn: (backend, message) => logger.warn({ backend }, message),
    // Once per change, like HAProxy's "Server … is DOWN": a dead scanner is a warning, its return news.
    endpointHealth: (backend, { endpoint, healthy, reason }) =>
      healthy ? logger.info({ backend, endpoint, reason }, 'backend endpoint up') : logger.warn({ backend, endpoint, reason }, 'backend endpoint down'),
  };
  const backends = await createBackends(adapted.backends, backendOptions);
  const server = createIcapServer(config, { logger, backends });
  let admin: AdminServer | null = null;
  let addresses: BoundListener[];
  let adminPort: number | null = null;
  try {
    addresses = await server.listen();
    if (config.admin.enabled && options.admin !== false) {
      admin = createAdminServer({ metrics: () => server.metrics.registry, readiness: () => server.readiness(), logger });
      const a = await admin.listen(config.admin.host, config.admin.port);
      adminPort = a.port;
      logger.info({ host: a.address, port: a.port }, 'admin listening');
    }
  } catch (err) {
    await admin?.close();
    await server.close(0);
    throw err;
  }
  logger.info(
    { config: config.source, services: Object.keys(config.services), backends: [...backends.keys()], istags: server.istags() },
    options.startedMessage ?? 'icap-bridge started',
  );

  let reloading: Promise<boolean> = Promise.resolve(true);
  async function reloadOnce(given?: Config): Promise<boolean> {
    let adaptedNext: AdaptedConfig;
    try {
      adaptedNext = adapt(given ?? loadConfigFile(configPath));
    } catch (err) {
      logger.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'reload rejected: keeping the running configuration');
      return false;
    }
    const next = adaptedNext.server;
    let nextBackends;
    try {
      nextBackends = await createBackends(adaptedNext.backends, backendOptions);
    } catch (err) {
      logger.error({ err }, 'reload rejected: backends failed to start; keeping the running configuration');
      return false;
    }
    // Only a lone server can see this change: a cluster primary keeps its workers' value as started.
    warnIfProcessesChanged(logger, server.config, next);
    const before = server.istags();
    // With the rest of the configuration, so "configuration reloaded" is already written (or not) at the new level.
    setLogLevel(rootLogger, next.logging.level);
    server.reload(next, nextBackends);
    logger.info({ config: next.source, istags: server.istags(), previous_istags: before }, 'configuration reloaded');
    return true;
  }

  return {
    server,
    addresses,
    adminPort,
    logger,
    get config() {
      return server.config;
    },
    reload(next?: Config) {
      // One reload at a time, in the order the signals (or the primary's messages) came.
      const once = (): Promise<boolean> => reloadOnce(next);
      reloading = reloading.then(once, once);
      return reloading;
    },
    async stop(graceMs = server.config.server.timeouts.shutdown_grace_ms) {
      await admin?.close();
      await server.close(graceMs);
      logger.info('icap-bridge stopped');
      await flushLogs(logger, LOG_FLUSH_TIMEOUT_MS);
    },
  };
}

/**
 * SIGTERM/SIGINT: stop accepting, finish in-flight transactions, exit 0. SIGHUP: reload. `held`
 * is what came while the server was starting (src/cluster/startup-signals.ts): a stop is carried
 * out now, a SIGHUP becomes one reload now.
 */
export function handleSignals(running: Running, held: HeldSignals = { stop: null, reload: false }): void {
  let stopping = false;
  const onStop = (signal: NodeJS.Signals, duringStartup = false): void => {
    if (stopping) return;
    stopping = true;
    running.logger.info(
      { signal, grace_ms: running.config.server.timeouts.shutdown_grace_ms, ...(duringStartup && { during_startup: true }) },
      'shutting down',
    );
    running.stop().then(
      () => process.exit(0),
      async (err: unknown) => {
        running.logger.error({ err }, 'error during shutdown');
        // The error's own line too: process.exit does not wait for the log thread (logger.ts).
        await flushLogs(running.logger, LOG_FLUSH_TIMEOUT_MS);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', (signal) => onStop(signal));
  process.on('SIGINT', (signal) => onStop(signal));
  process.on('SIGHUP', () => {
    if (!stopping) void running.reload();
  });
  if (held.stop !== null) {
    onStop(held.stop, true);
  } else if (held.reload) {
    running.logger.info('SIGHUP came during start-up: reloading now that the server has started');
    void running.reload();
  }
}

