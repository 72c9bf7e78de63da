/**
 * Runs icap-bridge for the benchmark the way users run it: `node dist/src/cli.js --config FILE`,
 * with bench/icap-bridge.bench.yaml rendered into a private temp directory (config, spool, log).
 * Its stdout and stderr go to a file there (the access log is on, as c-icap's is). stop() sends
 * SIGTERM to the process it started, waits (bounded), kills it by PID if needed, and then kills by
 * PID any cluster worker that outlived it (their pids come from the "icap-bridge started" line).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from '../../tools/processes.js';
import type { AccessLogFormat } from '../../src/observability/access-log.js';
import type { ScenarioName } from './scenarios.js';

export type { AccessLogFormat };

/** logging.access_log_format's values, the bench's default (squid) first. */
export const ACCESS_LOG_FORMATS = ['squid', 'json'] as const satisfies readonly AccessLogFormat[];

export function isAccessLogFormat(s: string): s is AccessLogFormat {
  return (ACCESS_LOG_FORMATS as readonly string[]).includes(s);
}

export const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const TEMPLATE = join(ROOT, 'bench', 'icap-bridge.bench.yaml');

export interface BridgeOptions {
  port: number;
  processes: number;
  /** clamd endpoint for the `clamd` service: a UNIX socket path or host:port. */
  clamdEndpoint: string;
  /** Must equal clamd's StreamMaxLength. */
  streamMaxBytes: number;
  /** backends.builtin.workers (scan threads per process; 0 = one per CPU). */
  builtinWorkers: number;
  /** backends.clamav.transfer: instream (default) or path. */
  clamdTransfer?: 'instream' | 'path';
  /** logging.access_log_format: squid (default here: c-icap's access log is a short text line too) or json. */
  accessLogFormat?: AccessLogFormat;
  /** Extra node options, e.g. ['--cpu-prof', '--cpu-prof-dir', DIR]. */
  nodeArgs?: string[];
  /** Another tree's dist/src/cli.js (bench/ab-builds.ts); default this tree's. */
  cli?: string;
}

export interface BridgeProcess {
  readonly pid: number;
  readonly port: number;
  readonly processes: number;
  readonly dir: string;
  /** The spool directory (workers spool in icap-bridge-worker-<pid>/ below it). */
  readonly spoolDir: string;
  /** Worker pids (processes > 1), or [pid]. */
  readonly servingPids: number[];
  /** Entries left in spool/ (temp files, worker directories); 0 when clean. */
  spoolEntries(): number;
  /** Empties the log file (the access log grows by tens of MB per run); the server appends on. */
  truncateLog(): void;
  /** Stops it (by PID), removes its directory; resolves with the spool entries left at exit. */
  stop(): Promise<number>;
}

/** The bench configuration's service for each scenario: reqmod for REQMOD, respmod for the rest (both the embedded engine). */
export const BENCH_SERVICE: Readonly<Record<ScenarioName, string>> = { options: 'respmod', 'reqmod-null': 'reqmod', 'respmod-4k': 'respmod', 'respmod-1m': 'respmod' };

/**
 * One process of another tree's build (`root`/dist/src/cli.js: a base checkout, a patched copy) with
 * the bench configuration, for the small scenarios: its clamd service points nowhere. Its access line
 * is JSON unless `accessLogFormat` says squid: a build from before Session 24 knows no other (the
 * rendered config then leaves the key out), and both sides of an A/B must write the same line.
 */
export async function startTreeBridge(root: string, port: number, accessLogFormat: AccessLogFormat = 'json'): Promise<BridgeProcess> {
  return startBridge({
    accessLogFormat,
    cli: join(root, 'dist', 'src', 'cli.js'),
    port,
    processes: 1,
    clamdEndpoint: '127.0.0.1:9', // the clamd service is not used here
    streamMaxBytes: 1_048_576,
    builtinWorkers: 0,
    clamdTransfer: 'path',
  });
}

/** `npm run build` (tsc). A failed type check still emits JavaScript, so only a missing CLI is fatal. */
export function buildDist(log: (line: string) => void): void {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) log(`warning: tsc reported errors (exit ${r.status}); running the JavaScript it emitted:\n${(r.stdout ?? '').slice(0, 2000)}`);
  if (!existsSync(CLI)) throw new Error(`${CLI} missing after the build`);
}

/**
 * bench/icap-bridge.bench.yaml with its placeholders filled in (the bridges here, bench/hot-path.ts).
 * A JSON access line, the product's default, leaves logging.access_log_format out, so a build from
 * before the key existed (bench/ab-builds.ts's base) still accepts the config.
 */
export function renderBenchConfig(o: Omit<BridgeOptions, 'nodeArgs' | 'cli'>, spoolDir: string): string {
  const format = o.accessLogFormat ?? 'squid';
  let template = readFileSync(TEMPLATE, 'utf8');
  if (format === 'json') template = template.replace(/^ *access_log_format: @ACCESS_LOG_FORMAT@\n/m, '');
  return template
    .replaceAll('@PORT@', String(o.port))
    .replaceAll('@PROCESSES@', String(o.processes))
    .replaceAll('@SPOOL_DIR@', spoolDir)
    .replaceAll('@CLAMD_ENDPOINT@', o.clamdEndpoint)
    .replaceAll('@STREAM_MAX@', String(o.streamMaxBytes))
    .replaceAll('@BUILTIN_WORKERS@', String(o.builtinWorkers))
    .replaceAll('@CLAMD_TRANSFER@', o.clamdTransfer ?? 'instream')
    .replaceAll('@ACCESS_LOG_FORMAT@', format);
}

export async function startBridge(o: BridgeOptions): Promise<BridgeProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-bench-'));
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  const configPath = join(dir, 'icap-bridge.yaml');
  writeFileSync(configPath, renderBenchConfig(o, spool));
  const logPath = join(dir, 'bridge.log');
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.cli ?? CLI, '--config', configPath], { stdio: ['ignore', fd, fd], cwd: dir });
  } finally {
    closeSync(fd);
  }
  let gone = false;
  const exited = new Promise<void>((r) => child.once('exit', () => ((gone = true), r())));
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');

  let servingPids: number[] = [];
  const spoolEntries = (): number => (existsSync(spool) ? readdirSync(spool).length : 0);
  const stop = async (): Promise<number> => {
    if (!gone) child.kill('SIGTERM');
    if (!gone && (await Promise.race([exited.then(() => 'exited'), sleep(20_000).then(() => 'timeout')])) === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
    for (const pid of servingPids) {
      if (pid !== child.pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    const left = spoolEntries();
    rmSync(dir, { recursive: true, force: true });
    return left;
  };

  // Bounded wait for the start line (the primary's, when there are workers).
  for (let i = 0; i < 600 && !gone; i++) {
    const started = log()
      .split('\n')
      .find((l) => l.includes('"msg":"icap-bridge started"'));
    if (started !== undefined) {
      const line = JSON.parse(started) as { worker_pids?: number[] };
      servingPids = line.worker_pids ?? [child.pid!];
      return {
        pid: child.pid!,
        port: o.port,
        processes: o.processes,
        dir,
        spoolDir: spool,
        servingPids,
        spoolEntries,
        truncateLog: () => truncateSync(logPath, 0),
        stop,
      };
    }
    await sleep(50);
  }
  // Both first: stop() ends the process and removes the directory the log is in.
  const exitedOnItsOwn = gone;
  const tail = log().slice(-3000);
  await stop();
  throw new Error(`icap-bridge did not start (exited: ${exitedOnItsOwn}):\n${tail}`);
}
