/**
 * A cluster worker (server.processes > 1): a whole icap-bridge server (src/main.ts start()) whose
 * listeners are shared with its siblings through node:cluster, without the admin listener, and
 * driven by the primary (src/cluster/primary.ts) over IPC:
 *
 *   ready  ──► primary            once listening, with its ISTags
 *   reload ◄── primary (SIGHUP)   re-reads the file the primary has just validated; answers reloaded
 *   stop   ◄── primary (SIGTERM)  graceful stop within graceMs, then exit 0
 *   readiness / metrics ◄──►      for the primary's /readyz and /metrics
 *
 * Signals sent to the worker itself: SIGTERM/SIGINT stop it gracefully (systemd's default
 * KillMode=control-group signals every process of the unit at once); SIGHUP is ignored, since
 * reloads come from the primary. If the primary disappears (IPC channel closed), the worker stops.
 */
import cluster from 'node:cluster';
import { rmSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { start, type Running } from '../main.js';
import { flushLogs, LOG_FLUSH_TIMEOUT_MS } from '../observability/logger.js';
import { clusterLogDestination } from './log-destination.js';
import { isToWorker, type ToPrimary } from './messages.js';
import { createWorkerSpoolDirectory } from './worker-spool.js';

function send(message: ToPrimary): void {
  // A closed channel (the primary is gone) is reported to the callback, not as an unhandled
  // 'error' event; 'disconnect' then stops this worker.
  if (process.connected) process.send?.(message, undefined, undefined, () => {});
}

export async function runWorker(configPath: string): Promise<void> {
  // Spool base directory → this worker's own subdirectory in it (one per directory a reload names).
  const spoolDirs = new Map<string, string>();
  const adaptConfig = (config: Config): Config => {
    const base = config.spool.directory;
    let own = spoolDirs.get(base);
    if (own === undefined) {
      own = createWorkerSpoolDirectory(base, process.pid);
      spoolDirs.set(base, own);
    }
    return { ...config, spool: { ...config.spool, directory: own } };
  };
  const removeSpoolDirs = (): void => {
    for (const dir of spoolDirs.values()) rmSync(dir, { recursive: true, force: true });
  };

  let running: Running;
  try {
    running = await start(configPath, {
      admin: false,
      startedMessage: 'worker started',
      logBindings: { pid: process.pid, worker: cluster.worker?.id },
      logDestination: clusterLogDestination(),
      adaptConfig,
    });
  } catch (err) {
    removeSpoolDirs();
    throw err;
  }
  const registry = running.server.metrics.registry;

  let stopping = false;
  const stop = (graceMs: number, why: string): void => {
    if (stopping) return;
    stopping = true;
    running.logger.info({ reason: why, grace_ms: graceMs }, 'worker stopping');
    running.stop(graceMs).then(
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
  };

  process.on('message', (message: unknown) => {
    if (!isToWorker(message)) return;
    switch (message.type) {
      case 'icap-bridge:stop':
        stop(message.graceMs, 'primary');
        return;
      case 'icap-bridge:reload':
        if (stopping) {
          send({ type: 'icap-bridge:reloaded', requestId: message.requestId, ok: false, istags: running.server.istags() });
          return;
        }
        void running.reload().then((ok) =>
          send({ type: 'icap-bridge:reloaded', requestId: message.requestId, ok, istags: running.server.istags() }),
        );
        return;
      case 'icap-bridge:readiness':
        send({ type: 'icap-bridge:readiness', requestId: message.requestId, readiness: running.server.readiness() });
        return;
      case 'icap-bridge:metrics':
        registry.getMetricsAsJSON().then(
          (metrics) => send({ type: 'icap-bridge:metrics', requestId: message.requestId, metrics }),
          (err: unknown) => running.logger.error({ err }, 'metrics collection failed'),
        );
        return;
    }
  });
  const graceMs = (): number => running.config.server.timeouts.shutdown_grace_ms;
  process.on('disconnect', () => stop(graceMs(), 'primary gone'));
  process.on('SIGTERM', () => stop(graceMs(), 'SIGTERM'));
  process.on('SIGINT', () => stop(graceMs(), 'SIGINT'));
  // Without a listener SIGHUP would kill the worker (a terminal hang-up reaches the whole group).
  process.on('SIGHUP', () => running.logger.debug('SIGHUP ignored: the primary reloads the workers'));

  send({ type: 'icap-bridge:ready', istags: running.server.istags() });
}
