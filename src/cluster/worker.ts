/**
 * A cluster worker (server.processes > 1): a whole icap-bridge server (src/main.ts start()) whose
 * listeners are shared with its siblings through node:cluster, without the admin listener, and
 * driven by the primary (src/cluster/primary.ts) over IPC:
 *
 *   hello  ──► primary            listening for messages: what should I run?
 *   config ◄── primary            the configuration the primary last accepted (or stop)
 *   ready  ──► primary            once listening, with its ISTags
 *   reload ◄── primary (SIGHUP)   the configuration the primary has just accepted; answers reloaded
 *   stop   ◄── primary (SIGTERM)  graceful stop within graceMs, then exit 0
 *   readiness / metrics ◄──►      for the primary's /readyz and /metrics
 *
 * The worker never reads the configuration file: what it runs is what the primary holds
 * (messages.ts says why), so a replacement started after a rejected reload, or after the file
 * was edited without a reload, runs what its siblings run. Nor the files it names: it reads the
 * primary's copies of them (config-files.ts, file-snapshots.ts), for the same reason.
 *
 * A stop (from the primary, or SIGTERM/SIGINT) is heard from the start: while waiting for the
 * configuration the worker exits at once; while starting, it stops as soon as start() returns,
 * without reporting ready. If the primary disappears, node:cluster ends the worker at once. Signals sent to the worker itself:
 * SIGTERM/SIGINT stop it gracefully (systemd's default KillMode=control-group signals every
 * process of the unit at once); SIGHUP is ignored, since reloads come from the primary.
 */
import cluster from 'node:cluster';
import { rmSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { deepFreeze } from '../config/deep-freeze.js';
import { start, type AdaptedConfig, type Running } from '../main.js';
import { flushLogs, LOG_FLUSH_TIMEOUT_MS } from '../observability/logger.js';
import { readingCopies, type FileCopies } from './config-files.js';
import { workerLogDestination } from './log-destination.js';
import { isToWorker, type ToPrimary } from './messages.js';
import type { SignalHolder } from './startup-signals.js';
import { createWorkerSpoolDirectory } from './worker-spool.js';

function send(message: ToPrimary): void {
  // A closed channel (the primary is gone) is reported to the callback, not as an unhandled
  // 'error' event; node:cluster then ends this worker on 'disconnect'.
  if (process.connected) process.send?.(message, undefined, undefined, () => {});
}

/** The primary's copies of the files each configuration received names, for adaptConfig (below). */
const copiesOf = new WeakMap<Config, FileCopies>();

/** The IPC channel carries JSON: frozen again, as every loaded configuration is (config/load.ts). */
function received(config: Config, files: FileCopies): Config {
  const frozen = deepFreeze(config) as Config;
  copiesOf.set(frozen, files);
  return frozen;
}

interface StopRequest {
  /** null: the running configuration's shutdown_grace_ms. */
  readonly graceMs: number | null;
  readonly why: string;
}

interface Life {
  phase: 'waiting for configuration' | 'starting' | 'running';
  running: Running | null;
  stop: StopRequest | null;
}

export async function runWorker(configPath: string, signals: SignalHolder): Promise<void> {
  // Spool base directory → this worker's own subdirectory in it (one per directory a reload names).
  const spoolDirs = new Map<string, string>();
  const adaptConfig = (config: Config): AdaptedConfig => {
    const files = copiesOf.get(config);
    if (files === undefined) throw new Error('a configuration that did not come from the primary');
    const base = config.spool.directory;
    let own = spoolDirs.get(base);
    if (own === undefined) {
      own = createWorkerSpoolDirectory(base, process.pid);
      spoolDirs.set(base, own);
    }
    return readingCopies({ ...config, spool: { ...config.spool, directory: own } }, files);
  };
  const removeSpoolDirs = (): void => {
    for (const dir of spoolDirs.values()) rmSync(dir, { recursive: true, force: true });
  };

  const life: Life = { phase: 'waiting for configuration', running: null, stop: null };
  let deliverConfig: (config: Config) => void = () => {};
  const configArrived = new Promise<Config>((resolve) => (deliverConfig = resolve));

  function stopRunning(running: Running, { graceMs, why }: StopRequest, duringStartup: boolean): void {
    const grace = graceMs ?? running.config.server.timeouts.shutdown_grace_ms;
    running.logger.info({ reason: why, grace_ms: grace, ...(duringStartup && { during_startup: true }) }, 'worker stopping');
    running.stop(grace).then(
      () => {
        removeSpoolDirs();
        process.exit(0);
      },
      async (err: unknown) => {
        running.logger.error({ err }, 'error during worker shutdown');
        removeSpoolDirs();
        await flushLogs(running.logger, LOG_FLUSH_TIMEOUT_MS);
        process.exit(1);
      },
    );
  }

  function askStop(request: StopRequest): void {
    if (life.stop !== null) return;
    life.stop = request;
    switch (life.phase) {
      case 'waiting for configuration':
        process.exit(0); // nothing started, no directory made
        break;
      case 'starting':
        break; // stopped as soon as start() returns (below)
      case 'running':
        stopRunning(life.running!, request, false);
        break;
    }
  }

  process.on('message', (message: unknown) => {
    if (!isToWorker(message)) return;
    const running = life.running;
    // log-pause and log-resume are not here: the log destination listens for them itself (log-destination.ts).
    switch (message.type) {
      case 'icap-bridge:config':
        deliverConfig(received(message.config, message.files));
        return;
      case 'icap-bridge:stop':
        askStop({ graceMs: message.graceMs, why: 'primary' });
        return;
      case 'icap-bridge:reload':
        if (running === null || life.stop !== null) {
          send({ type: 'icap-bridge:reloaded', requestId: message.requestId, ok: false, istags: running?.server.istags() ?? {} });
          return;
        }
        void running.reload(received(message.config, message.files)).then((ok) =>
          send({ type: 'icap-bridge:reloaded', requestId: message.requestId, ok, istags: running.server.istags() }),
        );
        return;
      // The primary asks only workers that said they are ready.
      case 'icap-bridge:readiness':
        if (running !== null) send({ type: 'icap-bridge:readiness', requestId: message.requestId, readiness: running.server.readiness() });
        return;
      case 'icap-bridge:metrics':
        running?.server.metrics.registry.getMetricsAsJSON().then(
          (metrics) => send({ type: 'icap-bridge:metrics', requestId: message.requestId, metrics }),
          (err: unknown) => running.logger.error({ err }, 'metrics collection failed'),
        );
        return;
    }
  });
  // In the tick that releases the start-up handlers (serve.ts), so no signal falls in between.
  const held = signals.release();
  // The primary gone (its IPC channel closed): node:cluster exits the worker at once, before any
  // 'disconnect' listener of ours could stop it gracefully. Its directories at least go with it.
  process.on('exit', removeSpoolDirs);
  process.on('SIGTERM', () => askStop({ graceMs: null, why: 'SIGTERM' }));
  process.on('SIGINT', () => askStop({ graceMs: null, why: 'SIGINT' }));
  // Without a listener SIGHUP would kill the worker (a terminal hang-up reaches the whole group).
  process.on('SIGHUP', () => life.running?.logger.debug('SIGHUP ignored: the primary reloads the workers'));
  if (held.stop !== null) askStop({ graceMs: null, why: held.stop });

  // Before hello: the primary may ask for log pauses from then on (log-destination.ts).
  const logDestination = workerLogDestination();
  send({ type: 'icap-bridge:hello' });
  const config = await configArrived;
  life.phase = 'starting';
  let running: Running;
  try {
    running = await start(configPath, {
      config,
      admin: false,
      startedMessage: 'worker started',
      logBindings: { pid: process.pid, worker: cluster.worker?.id },
      logDestination,
      adaptConfig,
    });
  } catch (err) {
    removeSpoolDirs();
    throw err;
  }
  life.running = running;
  life.phase = 'running';
  if (life.stop !== null) {
    stopRunning(running, life.stop, true);
    return;
  }
  send({ type: 'icap-bridge:ready', istags: running.server.istags() });
}
