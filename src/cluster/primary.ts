/**
 * The cluster primary (server.processes > 1). It serves no ICAP itself: it forks the workers
 * (src/cluster/worker.ts), which share the listeners through node:cluster (round-robin hand-off of
 * accepted connections on Linux), and it owns everything that must happen once:
 *
 * - the configuration: workers run the one the primary last accepted, which it sends them
 *   (messages.ts), never the file on disk, which may have changed or broken since; a worker
 *   started after a reload gets the reloaded one, with the settings that only a restart applies
 *   (listener addresses, TLS, processes, admin) as the node started (worker-config.ts); and the
 *   files it names (block pages, hash lists, CAs, TLS certificate and key) as the primary copied
 *   them when it accepted it (file-snapshots.ts), not as they are on disk now;
 * - signals, from before the first fork: SIGTERM/SIGINT stop every worker gracefully within
 *   shutdown_grace_ms and exit 0, also during start-up (a worker still starting stops once it
 *   is up); SIGHUP validates the file once, then sends it to each worker (an invalid file is
 *   rejected and logged here, and the workers keep serving); during start-up it is deferred
 *   until every worker is ready (startup-signals.ts says why);
 * - a worker that exits unexpectedly is replaced (after a delay that grows while they keep dying
 *   young), and its spool directory, with any temp files it could not remove, is deleted;
 * - the admin listener, with metrics summed over the workers (and what exited ones had counted)
 *   and readiness from all of them.
 *
 * A worker's life as the primary sees it:
 *
 *   forked ──hello──► configured ──ready──► ready ──exit──► (replaced unless stopping)
 *            ◄config (or ◄stop when stopping)     ◄reload / readiness / metrics
 *
 * A stop goes only to workers that said hello: before that a worker may not listen for messages
 * yet, and a message nobody listens for is lost. One that has not said hello yet gets stop as the
 * answer to its hello.
 */
import cluster, { type Worker } from 'node:cluster';
import { loadConfigFile, type Config } from '../config/index.js';
import { createAdminServer, type AdminServer } from '../observability/admin-server.js';
import { createLogger, flushLogs, LOG_FLUSH_TIMEOUT_MS, setLogLevel, type Logger } from '../observability/logger.js';
import { createClusterAdmin } from './cluster-admin.js';
import { primaryLogDestination } from './log-destination.js';
import { isToPrimary, type ToPrimary, type ToWorker } from './messages.js';
import type { SignalHolder } from './startup-signals.js';
import type { FileCopies } from './config-files.js';
import { FileSnapshots } from './file-snapshots.js';
import { warnIfListenersChanged, warnIfProcessesChanged } from './restart-only.js';
import { workerConfig } from './worker-config.js';
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
/** A log pause not answered by then is asked again (a write stuck on a full pipe answers late). */
const LOG_PAUSE_TIMEOUT_MS = 10_000;

interface WorkerState {
  readonly worker: Worker;
  readonly pid: number;
  readonly startedAt: number;
  /** The configuration generation (count of accepted reloads) it was sent; null until its hello. */
  configuredAt: number | null;
  ready: boolean;
  /** It said hello: it listens for messages, log pauses included. */
  saidHello: boolean;
}

export interface ClusterPrimary {
  readonly logger: Logger;
  readonly adminPort: number | null;
  /** pids of the workers now running. */
  workerPids(): number[];
}

export async function runPrimary(configPath: string, initial: Config, processes: number, signals: SignalHolder): Promise<ClusterPrimary> {
  /** The configuration last accepted (at start, or by a reload). */
  let config = initial;
  /** What the workers run: `config` with the restart-only settings as started. */
  let forWorkers = initial;
  // Before the first fork, and while signals are still held: the workers read these copies.
  const snapshots = await FileSnapshots.create(initial.spool.directory, process.pid, initial);
  process.on('exit', () => snapshots.removeAll());
  /** The copies of the files `forWorkers` names. */
  let files: FileCopies = await snapshots.take(0, forWorkers);
  // The writer of every log line too long for one atomic write to a shared pipe (log-destination.ts).
  const logs = primaryLogDestination(pauseWorkerLogs);
  const rootLogger = createLogger({ level: config.logging.level, destination: logs });
  const logger = rootLogger.child({ pid: process.pid, role: 'primary' });
  /** The workers holding their log writes while the primary writes long lines; null between such windows. */
  let logWindow: Set<WorkerState> | null = null;
  const workers = new Map<Worker, WorkerState>();
  const requests = new WorkerRequests();
  // Every spool directory a configuration named: a dead worker's directory may be in any of them.
  const spoolBases = new Set<string>([config.spool.directory]);
  /**
   * Stopping (a signal, or a failed start; set by stopWorkers): no worker is replaced, a hello is
   * answered with stop, and a signal changes nothing more.
   */
  let stopping = false;
  let stopGraceMs = 0;
  /** Bumped by every reload the primary accepted: a worker configured before one runs the old configuration. */
  let configGeneration = 0;
  let restartDelay: number = RESTART_DELAY_MS[0];
  const restartTimers = new Set<NodeJS.Timeout>();
  /** Reloads run one at a time, in the order the signals came. */
  let reloading: Promise<void> = Promise.resolve();
  let onAllReady: (() => void) | null = null;
  let onEarlyExit: ((why: string) => void) | null = null;
  let onShutdown: (() => void) | null = null;
  /** Every worker ready and the admin listener up. */
  let started = false;
  let reloadWhenStarted = false;
  let adminServer: AdminServer | null = null;
  let adminPort: number | null = null;

  const admin = createClusterAdmin(
    { expected: () => processes, readyWorkers: () => [...workers.values()].filter((s) => s.ready).map((s) => s.worker) },
    requests,
  );
  const pids = (): number[] => [...workers.values()].map((s) => s.pid);

  function send(worker: Worker, message: ToWorker): void {
    // With a callback a closed channel is reported there, not as an 'error' event nobody handles;
    // a worker whose channel closed stops on 'disconnect' by itself.
    if (worker.isConnected()) worker.send(message, () => {});
  }

  /** Every worker that may write holds its log writes; resolves with the function that lets them go on. */
  async function pauseWorkerLogs(): Promise<() => void> {
    const window = new Set([...workers.values()].filter((s) => s.saidHello));
    logWindow = window;
    await Promise.all([...window].map((s) => pauseLogs(s.worker)));
    return () => {
      logWindow = null;
      for (const s of window) send(s.worker, { type: 'icap-bridge:log-resume' });
    };
  }

  /** Until the worker says it is paused, or has gone: writing before would interleave with its write in flight. */
  async function pauseLogs(worker: Worker): Promise<void> {
    while (!worker.isDead() && worker.isConnected()) {
      try {
        await requests.ask(worker, (requestId) => ({ type: 'icap-bridge:log-pause', requestId }), 'icap-bridge:log-paused', LOG_PAUSE_TIMEOUT_MS);
        return;
      } catch {
        // Not answered in time (asked again) or gone (the loop ends).
      }
    }
  }

  function fork(): void {
    const worker = cluster.fork();
    const state: WorkerState = { worker, pid: worker.process.pid ?? -1, startedAt: Date.now(), configuredAt: null, ready: false, saidHello: false };
    workers.set(worker, state);
    worker.on('message', (message: unknown) => {
      if (isToPrimary(message)) onMessage(state, message);
    });
  }

  function onMessage(state: WorkerState, message: ToPrimary): void {
    switch (message.type) {
      case 'icap-bridge:hello':
        state.saidHello = true;
        // During a log window a new worker must not write before it ends: the pause goes before its
        // configuration (the channel keeps the order), so nothing it logs is written until the resume.
        if (logWindow !== null) {
          logWindow.add(state);
          send(state.worker, { type: 'icap-bridge:log-pause', requestId: 0 });
        }
        if (stopping) {
          send(state.worker, { type: 'icap-bridge:stop', graceMs: stopGraceMs });
          return;
        }
        state.configuredAt = configGeneration;
        send(state.worker, { type: 'icap-bridge:config', config: forWorkers, files });
        return;
      case 'icap-bridge:ready':
        state.ready = true;
        logger.info({ worker_pid: state.pid, istags: message.istags }, 'worker ready');
        // A reload went out while it was starting (and it was not asked): bring it up to date.
        if (state.configuredAt !== configGeneration) reloading = reloading.then(() => reloadWorkers([state], forWorkers, files));
        // Started: it has read the files it was sent.
        dropUnreadCopies();
        if (onAllReady !== null && [...workers.values()].filter((s) => s.ready).length === processes) onAllReady();
        return;
      case 'icap-bridge:log-line':
        logs.writeLong(message.line);
        return;
      default:
        requests.answer(message);
    }
  }

  cluster.on('exit', (worker, code, signal) => {
    const state = workers.get(worker);
    if (state === undefined) return;
    workers.delete(worker);
    admin.workerExited(worker);
    requests.workerGone(worker);
    for (const base of spoolBases) removeWorkerSpoolDirectory(base, state.pid);
    dropUnreadCopies();
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

  /** Removes the copies of generations no worker will read: all but the current one and those sent to workers still starting. */
  function dropUnreadCopies(): void {
    const keep = new Set([configGeneration]);
    for (const s of workers.values()) if (!s.ready && s.configuredAt !== null) keep.add(s.configuredAt);
    snapshots.keepOnly(keep);
  }

  /** Asks every worker to stop, waits (bounded), kills what is left by pid. */
  async function stopWorkers(graceMs: number): Promise<void> {
    // In the tick the stop was decided: no signal or exit is handled in between.
    stopping = true;
    stopGraceMs = graceMs;
    for (const t of restartTimers) clearTimeout(t);
    const all = [...workers.values()];
    const exited = Promise.all(all.map(({ worker: w }) => (w.isDead() ? Promise.resolve() : new Promise<void>((r) => w.once('exit', () => r())))));
    // The others are told in answer to their hello (onMessage).
    for (const s of all) if (s.configuredAt !== null) send(s.worker, { type: 'icap-bridge:stop', graceMs });
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs + EXIT_MARGIN_MS).unref());
    if ((await Promise.race([exited, timer])) === 'timeout') {
      for (const { worker: w } of all) {
        if (!w.isDead()) {
          logger.warn({ worker_pid: w.process.pid }, 'worker did not stop in time: killing it');
          w.process.kill('SIGKILL');
        }
      }
      await exited;
    }
  }

  function onStop(signal: NodeJS.Signals): void {
    if (stopping) return;
    const graceMs = config.server.timeouts.shutdown_grace_ms;
    logger.info({ signal, grace_ms: graceMs, worker_pids: pids(), ...(!started && { during_startup: true }) }, 'shutting down');
    onShutdown?.();
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
  }

  function onHangUp(): void {
    if (stopping) return;
    if (!started) {
      // The workers are reading the configuration sent at their hello; reloading them now would
      // race their start. The file may have changed after it was read, so it is read again once
      // they are all up.
      if (!reloadWhenStarted) logger.info('SIGHUP during start-up: the configuration is reloaded once every worker is ready');
      reloadWhenStarted = true;
      return;
    }
    // One reload at a time, in the order the signals came.
    reloading = reloading.then(reloadOnce, reloadOnce);
  }

  // Before the first fork, in the tick that releases the start-up handlers (serve.ts).
  const held = signals.release();
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHangUp);
  if (held.reload) onHangUp();
  if (held.stop !== null) onStop(held.stop);

  // Start-up: every worker must report ready, or the whole start fails (a port in use, say).
  // A stop signal meanwhile ends the wait; onStop does the rest.
  if (!stopping) for (let i = 0; i < processes; i++) fork();
  try {
    await new Promise<void>((resolve, reject) => {
      if (stopping) return resolve();
      const timer = setTimeout(() => reject(new Error(`workers not ready within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
      onAllReady = () => (clearTimeout(timer), resolve());
      onEarlyExit = (why) => (clearTimeout(timer), reject(new Error(why)));
      onShutdown = () => (clearTimeout(timer), resolve());
    });
  } catch (err) {
    // Failing: a signal from now on would only race the exit (stopWorkers sets stopping at once).
    await stopWorkers(0);
    throw err;
  } finally {
    onAllReady = null;
    onEarlyExit = null;
    onShutdown = null;
  }

  if (config.admin.enabled && !stopping) {
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
  if (!stopping) {
    started = true;
    logger.info({ config: config.source, processes, worker_pids: pids() }, 'icap-bridge started');
    if (reloadWhenStarted) reloading = reloading.then(reloadOnce, reloadOnce);
  }

  async function reloadOnce(): Promise<void> {
    const generation = configGeneration + 1;
    let next: Config;
    let nextForWorkers: Config;
    let nextFiles: FileCopies;
    try {
      next = loadConfigFile(configPath);
      nextForWorkers = workerConfig(initial, next);
      // Accepted only once copied: a file removed since it was validated rejects the reload.
      nextFiles = await snapshots.take(generation, nextForWorkers);
    } catch (err) {
      logger.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'reload rejected: keeping the running configuration');
      return;
    }
    warnIfProcessesChanged(logger, initial, next);
    warnIfListenersChanged(logger, initial, next);
    config = next;
    // The primary's own lines; each worker sets its level when it takes the configuration (main.ts).
    setLogLevel(rootLogger, next.logging.level);
    forWorkers = nextForWorkers;
    files = nextFiles;
    configGeneration = generation;
    dropUnreadCopies();
    spoolBases.add(next.spool.directory);
    await reloadWorkers([...workers.values()].filter((s) => s.ready), forWorkers, files);
  }

  /** Sends `next` (reading `nextFiles`) to `targets` and logs what they answered. */
  async function reloadWorkers(targets: WorkerState[], next: Config, nextFiles: FileCopies): Promise<void> {
    const answers = await Promise.allSettled(
      targets.map((s) =>
        requests.ask(s.worker, (requestId) => ({ type: 'icap-bridge:reload', requestId, config: next, files: nextFiles }), 'icap-bridge:reloaded', RELOAD_TIMEOUT_MS),
      ),
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

  return { logger, adminPort, workerPids: pids };
}
