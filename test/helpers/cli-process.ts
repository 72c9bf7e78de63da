/**
 * The compiled CLI (node dist/src/cli.js --config FILE) as a child process: started and awaited
 * until it logs "icap-bridge started" (bounded), its JSON log lines parsed on demand, stopped by
 * its PID (SIGTERM, then SIGKILL after 10 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { waitFor } from './wait.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');

export interface CliProcess {
  pid: number;
  process: ChildProcess;
  logs(): Record<string, unknown>[];
  /** What the process wrote to stderr so far (Node.js warnings go there). */
  stderr(): string;
  /** Every line written to stdout so far, JSON or not (a `squid` access line is text). */
  stdoutLines(): string[];
  accessRecords(): Record<string, unknown>[];
  /** The access record of the transaction for `url`, once written (logs are written asynchronously). */
  recordFor(url: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Peak resident set size of the server process so far, in bytes (VmHWM). */
  peakRss(): number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnCliOptions {
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for "icap-bridge started" (default 15 s). */
  startTimeoutMs?: number;
  /**
   * RLIMIT_FSIZE for the server (bash's `ulimit -f`, in KiB): a write past it fails with EFBIG,
   * as on a full disk, and Node.js ignores the SIGXFSZ that comes with it. Pipes are not files,
   * so the log on stdout is not limited.
   */
  fileSizeLimitKiB?: number;
}

export async function spawnCli(configPath: string, options: SpawnCliOptions = {}): Promise<CliProcess> {
  const argv = [process.execPath, join(ROOT, 'dist/src/cli.js'), '--config', configPath];
  const limit = options.fileSizeLimitKiB;
  // exec keeps the PID: the one stop() signals is the server's own.
  const [command, ...args] = limit === undefined ? argv : ['bash', '-c', `ulimit -f ${limit} && exec "$0" "$@"`, ...argv];
  const child = spawn(command!, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  try {
    await waitFor(
      '"icap-bridge started"',
      () => {
        if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
        return out.includes('"icap-bridge started"');
      },
      { timeoutMs: options.startTimeoutMs ?? 15_000 },
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`server did not start (${(e as Error).message}): ${err || out.slice(-3000)}`);
  }
  const logs = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const accessRecords = (): Record<string, unknown>[] =>
    logs()
      .filter((l) => l.msg === 'access')
      .map((l) => l.access as Record<string, unknown>);
  return {
    pid: child.pid!,
    process: child,
    logs,
    stderr: () => err,
    stdoutLines: () => out.split('\n').filter(Boolean),
    accessRecords,
    recordFor: (url, timeoutMs = 5000) =>
      waitFor(`the access record for ${url}`, () => accessRecords().find((r) => r.url === url), { timeoutMs, intervalMs: 20 }),
    peakRss: () => {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return Number(m![1]) * 1024;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
