/**
 * What tests (test/helpers/clamd.ts) and the benchmark (bench/lib/clamd.ts) both need to run a
 * private, offline clamd (shared/specs/clamd-protocol.md §6): its directory and clamd.conf, an unsigned
 * daily.cud that gives VERSION a DB version, and one `z` command over the UNIX socket.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const SIGTOOL_BIN = '/usr/bin/sigtool';

/**
 * Writes `dbDir/daily.cud`: an unsigned CVD container (sigtool --build --unsigned) whose header
 * carries DB version `version`, so VERSION answers `ClamAV x.y.z/<version>/<date>`. It holds one
 * harmless hash signature named `signatureName` (the MD5 of a string nobody sends).
 */
export function buildUnsignedCud(dbDir: string, version: number, signatureName: string): void {
  const work = mkdtempSync(join(tmpdir(), 'icap-bridge-cud-'));
  try {
    const text = `${signatureName} db version ${version}`;
    const md5 = createHash('md5').update(text).digest('hex');
    writeFileSync(join(work, 'daily.hdb'), `${md5}:${Buffer.byteLength(text)}:${signatureName}\n`);
    writeFileSync(join(work, 'COPYING'), 'private signatures for icap-bridge tests and benchmarks\n');
    // sigtool asks for a builder name on stdin.
    execFileSync(SIGTOOL_BIN, ['--build=daily.cud', '--unsigned', `--cvd-version=${version}`, '--no-cdiff', `--datadir=${work}`], {
      cwd: work,
      input: 'icap-bridge\n',
      stdio: ['pipe', 'ignore', 'ignore'],
      timeout: 30_000,
    });
    writeFileSync(join(dbDir, 'daily.cud'), readFileSync(join(work, 'daily.cud')));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Where a private clamd keeps everything: one temp directory, removed as a whole when it stops. */
export interface PrivateClamdDir {
  /** clamd's own directory: temp files, pid file, clamd.conf. */
  readonly dir: string;
  /** Its signature database (created empty). */
  readonly dbDir: string;
  readonly socketPath: string;
  readonly logPath: string;
}

/** Creates a temp directory `<tmp>/<prefix>XXXXXX` with an empty `db/` and names the socket and log in it. */
export function makePrivateClamdDir(prefix: string): PrivateClamdDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const dbDir = join(dir, 'db');
  mkdirSync(dbDir);
  return { dir, dbDir, socketPath: join(dir, 'clamd.sock'), logPath: join(dir, 'clamd.log') };
}

export interface PrivateClamdConf {
  /** clamd's own directory: temp files, pid file; clamd.conf is written here. */
  readonly dir: string;
  readonly dbDir: string;
  readonly socketPath: string;
  /** 127.0.0.1 port of the TCP listener; none when absent. */
  readonly port?: number;
  readonly logPath: string;
  readonly streamMaxLength: number;
  readonly maxThreads: number;
  readonly maxQueue: number;
  readonly readTimeoutS: number;
  readonly commandReadTimeoutS: number;
  /** Further lines (e.g. `LogTime yes`). */
  readonly extra?: readonly string[];
  /** The user clamd drops to. Default: as root, whoever runs this (so the temp dir stays ours); else none. */
  readonly user?: string;
}

/** Writes `dir/clamd.conf` for a private foreground clamd on loopback and a UNIX socket; returns its path. */
export function writePrivateClamdConf(c: PrivateClamdConf): string {
  const conf = [
    `DatabaseDirectory ${c.dbDir}`,
    `TemporaryDirectory ${c.dir}`,
    `LocalSocket ${c.socketPath}`,
    'FixStaleSocket yes',
    ...(c.port !== undefined ? [`TCPSocket ${c.port}`, 'TCPAddr 127.0.0.1'] : []),
    'Foreground yes',
    `LogFile ${c.logPath}`,
    `PidFile ${join(c.dir, 'clamd.pid')}`,
    `StreamMaxLength ${c.streamMaxLength}`,
    `MaxThreads ${c.maxThreads}`,
    `MaxQueue ${c.maxQueue}`,
    `ReadTimeout ${c.readTimeoutS}`,
    `CommandReadTimeout ${c.commandReadTimeoutS}`,
    'SelfCheck 0',
    'Bytecode no',
    ...(c.extra ?? []),
    // As root clamd drops to `User`.
    ...(c.user !== undefined ? [`User ${c.user}`] : process.getuid?.() === 0 ? [`User ${userInfo().username}`] : []),
  ];
  const path = join(c.dir, 'clamd.conf');
  writeFileSync(path, `${conf.join('\n')}\n`);
  return path;
}

/** One `z` command over the UNIX socket; resolves the reply (up to its NUL), or null on error or after `timeoutMs`. */
export function clamdCommand(socketPath: string, command: string, timeoutMs = 1000): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ path: socketPath });
    let out = '';
    const done = (reply: string | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('error', () => done(null));
    socket.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      const end = out.indexOf('\0');
      if (end !== -1) done(out.slice(0, end));
    });
    socket.on('close', () => done(out === '' ? null : out));
    socket.write(`z${command}\0`);
  });
}
