/**
 * A private HAProxy (Debian's package haproxy) in front of two icap-bridge instances, configured by
 * config/examples/haproxy.cfg with only the front address, the two server addresses, the stats
 * socket path and the check interval substituted (every substitution must hit, or the example
 * changed shape). Runs in the foreground (`-db`) and is stopped by its PID.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, ROOT } from './child-server.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);
export const HAPROXY = '/usr/sbin/haproxy';
export const HAPROXY_EXAMPLE = join(ROOT, 'config/examples/haproxy.cfg');

export interface HaproxyPorts {
  front: number;
  icap1: number;
  icap2: number;
}

/** The example with the addresses of a test, its stats socket and check interval. */
export function haproxyTestConfig(example: string, ports: HaproxyPorts, socket: string, interMs: number): string {
  const subs: [RegExp, string][] = [
    [/^(\s*bind\s+)\S+/m, `$1127.0.0.1:${ports.front}`],
    [/^(\s*server\s+icap1\s+)\S+/m, `$1127.0.0.1:${ports.icap1}`],
    [/^(\s*server\s+icap2\s+)\S+/m, `$1127.0.0.1:${ports.icap2}`],
    [/^(\s*stats\s+socket\s+)\S+/m, `$1${socket}`],
    [/^(\s*default-server\s.*\binter\s+)\S+/m, `$1${interMs}ms`],
  ];
  let cfg = example;
  for (const [re, to] of subs) {
    if (!re.test(cfg)) throw new Error(`config/examples/haproxy.cfg: no line matches ${re}`);
    cfg = cfg.replace(re, to);
  }
  return cfg;
}

export interface Haproxy {
  readonly frontPort: number;
  readonly statsSocket: string;
  /** Everything HAProxy printed so far (its log goes to stdout: "Server ... is DOWN"). */
  output(): string;
  /** SIGTERM, SIGKILL after 5 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts HAProxy for icap-bridge instances on `icap1` and `icap2`, checking each every `interMs`;
 * resolves once its stats socket answers. Throws a clear error when haproxy is not installed.
 */
export async function startHaproxy(icap1: number, icap2: number, interMs: number): Promise<Haproxy> {
  await run(HAPROXY, ['-v']).catch((err: unknown) => {
    throw new Error(`haproxy is required (apt-get install haproxy; scripts/test-all.sh does it): ${String(err)}`);
  });
  const frontPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-haproxy-'));
  const statsSocket = join(dir, 'haproxy.sock');
  const cfgPath = join(dir, 'haproxy.cfg');
  writeFileSync(cfgPath, haproxyTestConfig(readFileSync(HAPROXY_EXAMPLE, 'utf8'), { front: frontPort, icap1, icap2 }, statsSocket, interMs));
  await run(HAPROXY, ['-c', '-f', cfgPath]); // rejects on a config error

  const child = spawn(HAPROXY, ['-f', cfgPath, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitFor('the HAProxy stats socket', async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited: ${out}`);
      return (await socketAnswers(statsSocket)) ? true : undefined;
    }, { timeoutMs: 10_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { frontPort, statsSocket, output: () => out, stop };
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
