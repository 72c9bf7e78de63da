/**
 * The cluster primary (server.processes > 1). It serves no ICAP itself: it forks the workers
 * (src/cluster/worker.ts), which share the listeners through node:cluster (round-robin hand-off of
 * accepted connections on Linux), and it owns everything that must happen once:
 *
 * - signals: SIGTERM/SIGINT stop every worker gracefully within shutdown_grace_ms and exit 0;
 *   SIGHUP validates the file once, then tells each worker to reload (an invalid file is rejected
 *   and logged here, and the workers keep serving);
 * - a worker that exits unexpectedly is replaced (after a delay that grows while they keep dying
 *   young), and its spool directory, with any temp files it could not remove, is deleted;
 * - the admin listener, with metrics summed over the workers and readiness from all of them.
 */
import cluster, { type Worker } from 'node:cluster';
import { loadConfigFile, type Config } from '../config/index.js';
import { createAdminServer, type AdminServer } from '../observability/admin-server.js';
import { createLogger, flushLogs, LOG_FLUSH_TIMEOUT_MS, type Logger } from '../observability/logger.js';
import { createClusterAdmin } from './cluster-admin.js';
import { clusterLogDestination } from './log-destination.js';
import { isToPrimary, type ToPrimary } from './messages.js';
import { WorkerRequests } from './worker-requests.js';
import { removeWorkerSpoolDirectory } from './worker-spool.js';

/** How long the first workers may take to listen before start-up counts as failed. */
const STARTUP_TIMEOUT_MS = 60_000;
/** Restart delay: doubles from the first value while workers die within YOUNG_MS of starting. */
const RESTART_DELAY_MS = [100, 60_000] as const;
const YOUNG_MS = 10_000;
/** Beyond shutdown_grace_ms, how long workers get to exit before they are killed. */
const EXIT_MARGIN_MS = 5_000;
const RELOAD_TIMEOUT_MS = 60_000;

interface WorkerState {
  readonly worker: Worker;
  readonly pid: number;
  readonly startedAt: number;
  /** The configuration generation (count of accepted reloads) when it was forked. */
  readonly forkedAt: number;
  ready: boolean;
}

export interface ClusterPrimary {
  readonly logger: Logger;
  readonly adminPort: number | null;
  /** pids of the workers now running. */
  workerPids(): number[];
}

export async function runPrimary(configPath: string, initial: Config, processes: number): Promise<ClusterPrimary> {
  let config = initial;
  const logger = createLogger({ level: config.logging.level, destination: clusterLogDestination() }).child({ pid: process.pid, role: 'primary' });
  const workers = new Map<Worker, WorkerState>();
  const requests = new WorkerRequests();
  // Every spool directory a configuration named: a dead worker's directory may be in any of them.
  const spoolBases = new Set<string>([config.spool.directory]);
  let stopping = false;
  /** Bumped by every reload the primary accepted: a worker forked before one may have read the old file. */
  let configGeneration = 0;
  let restartDelay: number = RESTART_DELAY_MS[0];
  const restartTimers = new Set<NodeJS.Timeout>();
  /** Reloads run one at a time, in the order the signals came. */
  let reloading: Promise<void> = Promise.resolve();
  let onAllReady: (() => void) | null = null;
  let onEarlyExit: ((why: string) => void) | null = null;

  const admin = createClusterAdmin(
    { expected: () => processes, readyWorkers: () => [...workers.values()].filter((s) => s.ready).map((s) => s.worker) },
    requests,
  );

  function fork(): void {
    const worker = cluster.fork();
    const state: WorkerState = { worker, pid: worker.process.pid ?? -1, startedAt: Date.now(), forkedAt: configGeneration, ready: false };
    workers.set(worker, state);
    worker.on('message', (message: unknown) => {
      if (isToPrimary(message)) onMessage(state, message);
    });
  }

  function onMessage(state: WorkerState, message: ToPrimary): void {
    if (message.type !== 'icap-bridge:ready') {
      requests.answer(message);
      return;
    }
    state.ready = true;
    logger.info({ worker_pid: state.pid, istags: message.istags }, 'worker ready');
    // It was still starting when a reload went out (and was not asked): bring it up to date.
    if (state.forkedAt !== configGeneration) reloading = reloading.then(() => reloadWorkers([state], config));
    if (onAllReady !== null && [...workers.values()].filter((s) => s.ready).length === processes) onAllReady();
  }

  cluster.on('exit', (worker, code, signal) => {
    const state = workers.get(worker);
    if (state === undefined) return;
    workers.delete(worker);
    requests.workerGone(worker);
    for (const base of spoolBases) removeWorkerSpoolDirectory(base, state.pid);
    if (stopping) return;
    logger.warn({ worker_pid: state.pid, code, signal, ran_ms: Date.now() - state.startedAt }, 'worker exited');
    if (onEarlyExit !== null) {
      onEarlyExit(`worker ${state.pid} exited with ${signal ?? `code ${code}`} before it was ready`);
      return;
    }
    restartDelay = Date.now() - state.startedAt < YOUNG_MS ? Math.min(restartDelay * 2, RESTART_DELAY_MS[1]) : RESTART_DELAY_MS[0];
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      if (stopping) return;
      admin.recordRestart();
      fork();
    }, restartDelay);
    restartTimers.add(timer);
  });

  /** Asks every worker to stop, waits (bounded), kills what is left by pid. */
  async function stopWorkers(graceMs: number): Promise<void> {
    stopping = true;
    for (const t of restartTimers) clearTimeout(t);
    const all = [...workers.keys()];
    const exited = Promise.all(all.map((w) => (w.isDead() ? Promise.resolve() : new Promise<void>((r) => w.once('exit', () => r())))));
    for (const w of all) {
      // With a callback a closed channel is reported there, not as an 'error' event nobody handles;
      // a worker whose channel closed stops on 'disconnect' by itself.
      if (w.isConnected()) w.send({ type: 'icap-bridge:stop', graceMs }, () => {});
    }
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs + EXIT_MARGIN_MS).unref());
    if ((await Promise.race([exited, timer])) === 'timeout') {
      for (const w of all) {
        if (!w.isDead()) {
          logger.warn({ worker_pid: w.process.pid }, 'worker did not stop in time: killing it');
          w.process.kill('SIGKILL');
        }
      }
      await exited;
    }
  }

  // Start-up: every worker must report ready, or the whole start fails (a port in use, say).
  for (let i = 0; i < processes; i++) fork();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`workers not ready within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
      onAllReady = () => (clearTimeout(timer), resolve());
      onEarlyExit = (why) => (clearTimeout(timer), reject(new Error(why)));
    });
  } catch (err) {
    await stopWorkers(0);
    throw err;
  } finally {
    onAllReady = null;
    onEarlyExit = null;
  }

  let adminServer: AdminServer | null = null;
  let adminPort: number | null = null;
  if (config.admin.enabled) {
    try {
      adminServer = createAdminServer({ metrics: () => admin.metrics, readiness: () => admin.readiness(), logger });
      const a = await adminServer.listen(config.admin.host, config.admin.port);
      adminPort = a.port;
      logger.info({ host: a.address, port: a.port }, 'admin listening');
    } catch (err) {
      await stopWorkers(0);
      throw err;
    }
  }
  const pids = (): number[] => [...workers.values()].map((s) => s.pid);
  logger.info({ config: config.source, processes, worker_pids: pids() }, 'icap-bridge started');

  async function reloadOnce(): Promise<void> {
    let next: Config;
    try {
      next = loadConfigFile(configPath);
    } catch (err) {
      logger.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'reload rejected: keeping the running configuration');
      return;
    }
    if (next.server.processes !== config.server.processes) logger.warn('server.processes changed: it takes effect on restart, not on reload');
    config = next;
    configGeneration++;
    spoolBases.add(next.spool.directory);
    await reloadWorkers([...workers.values()].filter((s) => s.ready), next);
  }

  /** Tells `targets` to reload the file and logs what they answered. */
  async function reloadWorkers(targets: WorkerState[], next: Config): Promise<void> {
    const answers = await Promise.allSettled(
      targets.map((s) => requests.ask(s.worker, (requestId) => ({ type: 'icap-bridge:reload', requestId }), 'icap-bridge:reloaded', RELOAD_TIMEOUT_MS)),
    );
    const results = answers.map((a, i) => ({
      worker_pid: targets[i]!.pid,
      ok: a.status === 'fulfilled' && a.value.ok,
      ...(a.status === 'fulfilled' ? { istags: a.value.istags } : { error: (a.reason as Error).message }),
    }));
    const failed = results.filter((r) => !r.ok).length;
    if (failed === 0) logger.info({ config: next.source, workers: results }, 'configuration reloaded');
    else logger.error({ config: next.source, workers: results }, `configuration reloaded by ${results.length - failed} of ${results.length} workers`);
  }

  let shuttingDown = false;
  const onStop = (signal: NodeJS.Signals): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    const graceMs = config.server.timeouts.shutdown_grace_ms;
    logger.info({ signal, grace_ms: graceMs, worker_pids: pids() }, 'shutting down');
    stopWorkers(graceMs)
      .then(() => adminServer?.close())
      .then(
        async () => {
          logger.info('icap-bridge stopped');
          await flushLogs(logger, LOG_FLUSH_TIMEOUT_MS);
          process.exit(0);
        },
        async (err: unknown) => {
          logger.error({ err }, 'error during shutdown');
          await flushLogs(logger, LOG_FLUSH_TIMEOUT_MS);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    if (shuttingDown) return;
    // One reload at a time, in the order the signals came.
    reloading = reloading.then(reloadOnce, reloadOnce);
  });

  return { logger, adminPort, workerPids: pids };
}
