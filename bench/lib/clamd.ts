/**
 * A private, offline clamd for the benchmark (the approach of test/helpers/clamd.ts, copied so the
 * bench does not depend on test code): a temp directory with its own clamd.conf, UNIX socket, TCP
 * port on 127.0.0.1, log and a tiny signature database built here with sigtool. No freshclam, no
 * network, nothing of the packaged service (/etc/clamav, /var/lib/clamav) is touched.
 *
 * The database holds two body signatures (EICAR's core and a marker) plus an unsigned daily.cud
 * for the version line. A real signature set makes every scan slower for every client alike; the
 * tiny one keeps clamd fast, which makes the bridge's own overhead show more, not less.
 *
 * If clamd is missing, Debian's clamav-daemon is installed with apt-get (through sudo when not
 * root). The daemon runs in the foreground as our child; stop() kills it by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildUnsignedCud, clamdCommand, makePrivateClamdDir, SIGTOOL_BIN, writePrivateClamdConf } from '../../tools/clamd-offline.js';
import { freePort } from './ports.js';

export const CLAMD_BIN = '/usr/sbin/clamd';
const EICAR_CORE = 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE';
const MARKER = 'ICAP-BRIDGE-BENCH-CLAMD-MARKER-5d1e';

export interface BenchClamdOptions {
  /** clamd MaxThreads (scans at once). */
  maxThreads: number;
  /** clamd MaxQueue. */
  maxQueue: number;
  /** StreamMaxLength in bytes (INSTREAM bodies beyond it are refused). */
  streamMaxLength: number;
}

export interface BenchClamd {
  readonly dir: string;
  readonly pid: number;
  readonly port: number;
  readonly socketPath: string;
  readonly version: string;
  stop(): Promise<void>;
}

/** Installs Debian's clamav-daemon when clamd or sigtool is missing. */
export function ensureClamdInstalled(log: (line: string) => void): void {
  if (existsSync(CLAMD_BIN) && existsSync(SIGTOOL_BIN)) return;
  log('clamd not found: installing the Debian package clamav-daemon');
  const apt = (args: string[]): number | null =>
    (process.getuid?.() === 0
      ? spawnSync('apt-get', args, { stdio: 'inherit', timeout: 600_000 })
      : spawnSync('sudo', ['apt-get', ...args], { stdio: 'inherit', timeout: 600_000 })
    ).status;
  if (apt(['install', '-y', 'clamav-daemon']) !== 0) {
    apt(['update']);
    if (apt(['install', '-y', 'clamav-daemon']) !== 0) throw new Error('could not install clamav-daemon');
  }
}

function writeDatabase(dbDir: string): void {
  const hex = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
  writeFileSync(join(dbDir, 'bench.ndb'), `Bench.Eicar:0:*:${hex(EICAR_CORE)}\nBench.Marker:0:*:${hex(MARKER)}\n`);
  buildUnsignedCud(dbDir, 1, 'Bench.DbVersion');
}

export { clamdCommand };

export async function startBenchClamd(o: BenchClamdOptions): Promise<BenchClamd> {
  const layout = makePrivateClamdDir('icap-bridge-bench-clamd-');
  const { dir, dbDir, socketPath, logPath } = layout;
  writeDatabase(dbDir);
  const port = await freePort();
  const confPath = writePrivateClamdConf({
    ...layout,
    port,
    streamMaxLength: o.streamMaxLength,
    maxThreads: o.maxThreads,
    maxQueue: o.maxQueue,
    readTimeoutS: 60,
    commandReadTimeoutS: 30,
  });

  const child: ChildProcess = spawn(CLAMD_BIN, ['-c', confPath, '--foreground'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let gone = false;
  const exited = new Promise<void>((r) => child.once('exit', () => ((gone = true), r())));
  const stop = async (): Promise<void> => {
    if (!gone) child.kill('SIGTERM');
    if (!gone && (await Promise.race([exited.then(() => 'exited'), sleep(10_000).then(() => 'timeout')])) === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Bounded readiness poll: loading the tiny DB takes about a second.
  for (let i = 0; i < 300 && !gone; i++) {
    if ((await clamdCommand(socketPath, 'PING', 500)) === 'PONG') {
      const version = (await clamdCommand(socketPath, 'VERSION', 1000)) ?? 'unknown';
      return { dir, pid: child.pid!, port, socketPath, version, stop };
    }
    await sleep(50);
  }
  await stop();
  throw new Error(`clamd did not become ready (exited: ${gone})\n${stderr}\n${existsSync(logPath) ? readFileSync(logPath, 'utf8').slice(-2000) : ''}`);
}
