/**
 * `icap-bridge [--config FILE]`: run the server until SIGTERM/SIGINT (main.ts does the wiring).
 * With server.processes > 1 this process becomes the cluster primary (src/cluster/primary.ts) and
 * forks workers that run this same command and land in src/cluster/worker.ts.
 */
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import type { SignalHolder } from '../cluster/startup-signals.js';
import { ConfigError, defaultConfigPath, loadConfigFile } from '../config/index.js';
import { tuneV8 } from './v8-tuning.js';

/** `signals`: SIGTERM/SIGINT/SIGHUP held since the CLI began (cli.ts); the role that starts releases them. */
export async function run(args: readonly string[], usage: string, version: () => string, signals: SignalHolder): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`icap-bridge: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`icap-bridge ${version()}\n`);
    return 0;
  }
  const configPath = values.config ?? defaultConfigPath();
  // Before the first request is read (v8-tuning.ts says why); harmless in a cluster primary.
  tuneV8();
  try {
    if (cluster.isWorker) {
      // The worker runs the configuration its primary sends, not the file (messages.ts says why).
      await (await import('../cluster/worker.js')).runWorker(configPath, signals);
      return -1; // keep running; the primary stops it
    }
    const config = loadConfigFile(configPath);
    const { resolveProcessCount } = await import('../cluster/process-count.js');
    const processes = resolveProcessCount(config.server.processes);
    if (processes > 1) {
      await (await import('../cluster/primary.js')).runPrimary(configPath, config, processes, signals);
      return -1;
    }
    // Imported here, not above: a cluster primary never serves ICAP, and every module it does
    // not load is memory it does not hold (peak RSS counts all processes).
    const { handleSignals, start } = await import('../main.js');
    const running = await start(configPath, { config });
    // Same tick: no signal falls between the holding handlers and the real ones.
    handleSignals(running, signals.release());
    return -1; // keep running
  } catch (err) {
    // Failed to start: a signal may act by default again (what is left to do is exit).
    signals.release();
    const code = err instanceof ConfigError ? 2 : 1;
    const text = err instanceof ConfigError ? `configuration error\n${err.message}` : ((err as Error).stack ?? String(err));
    if (cluster.isWorker) {
      // The IPC channel would keep a failed worker alive: exit once the message is out.
      process.stderr.write(`icap-bridge worker ${process.pid}: ${text}\n`, () => process.exit(code));
      return -1;
    }
    process.stderr.write(`icap-bridge: ${text}\n`);
    return code;
  }
}
