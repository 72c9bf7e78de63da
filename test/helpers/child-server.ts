/**
 * Runs the compiled CLI (node dist/src/cli.js) as a child process on a free loopback port, reads
 * its JSON log lines, and stops it by PID. For tests that measure the real process (RSS) or drive
 * it with real clients (c-icap-client).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.once('error', rej);
  });
}

export interface ChildServer {
  port: number;
  pid: number;
  process: ChildProcess;
  dir: string;
  spoolDir: string;
  logs(): Record<string, unknown>[];
  accessRecords(): Record<string, unknown>[];
  /** The access record of the transaction for `url`, once written (logs are written asynchronously). */
  recordFor(url: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Peak resident set size of the server process so far, in bytes (VmHWM). */
  peakRss(): number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `extraYaml` is appended at the top level; `serverYaml` (indented two spaces) goes inside the
 * `server:` section, e.g. a `tls:` block. `options.port` listens on that port instead of a free
 * one (to restart a server on the same port).
 */
export async function startChildServer(
  extraYaml = '',
  serverYaml = '',
  options: { port?: number } = {},
): Promise<ChildServer> {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-child-'));
  const spoolDir = join(dir, 'spool');
  mkdirSync(spoolDir);
  const port = options.port ?? (await freePort());
  const configPath = join(dir, 'icap-bridge.yaml');
  writeFileSync(
    configPath,
    `server:\n  listen: [{ host: 127.0.0.1, port: ${port} }]\n${serverYaml}spool:\n  directory: ${spoolDir}\n${extraYaml}`,
  );
  const child = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const deadline = Date.now() + 15_000;
  while (!out.includes('"icap-bridge started"')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not start: ${err || out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
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
    port,
    pid: child.pid!,
    process: child,
    dir,
    spoolDir,
    logs,
    accessRecords,
    async recordFor(url, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const record = accessRecords().find((r) => r.url === url);
        if (record !== undefined) return record;
        if (Date.now() > deadline) throw new Error(`no access record for ${url}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    peakRss: () => {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return Number(m![1]) * 1024;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null) process.kill(child.pid!, signal);
      const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
