/**
 * A private, offline clamd for tests (shared/specs/clamd-protocol.md §6): a temp directory with
 * its own clamd.conf, sockets, log and a signature database built here — no freshclam, no
 * network, nothing of the packaged service (/etc/clamav, /var/lib/clamav) is used.
 *
 * Database (every name gets `.UNOFFICIAL` appended by clamd, as for any non-official DB):
 *   icap-bridge-test.ndb  IcapBridge.Test.Eicar  body signature on EICAR's 34-byte core
 *                         IcapBridge.Test.Body   body signature on BODY_MARKER
 *   icap-bridge-test.hsb  IcapBridge.Test.Hash   SHA-256 of HASH_FIXTURE (exact file only)
 *   daily.cud             an unsigned CVD container (sigtool --build --unsigned) whose header
 *                         carries DB version `dbVersion`: without one, VERSION answers only
 *                         `ClamAV 1.4.6`, with it `ClamAV 1.4.6/<dbVersion>/<build date>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildUnsignedCud, clamdCommand, makePrivateClamdDir, SIGTOOL_BIN, writePrivateClamdConf } from '../../tools/clamd-offline.js';
import { freePort } from './child-server.js';
import { waitFor } from './wait.js';

export const CLAMD_BIN = '/usr/sbin/clamd';
export { SIGTOOL_BIN };
/** Tests skip (with this reason) where Debian's clamav-daemon is not installed. */
export const HAVE_CLAMD = existsSync(CLAMD_BIN) && existsSync(SIGTOOL_BIN);

export const EICAR = Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*', 'latin1');
/** Matched anywhere by the body (ndb) signature. */
export const BODY_MARKER = Buffer.from('ICAP-BRIDGE-CLAMD-BODY-SIGNATURE-TEST-MARKER-7f3a9c', 'latin1');
/** Matched only as a whole file by the hash (hsb) signature. */
export const HASH_FIXTURE = Buffer.from('icap-bridge clamd hash-signature fixture: this exact file, nothing else\n', 'latin1');

/** Names as clamd reports them. */
export const SIG = {
  eicar: 'IcapBridge.Test.Eicar.UNOFFICIAL',
  body: 'IcapBridge.Test.Body.UNOFFICIAL',
  hash: 'IcapBridge.Test.Hash.UNOFFICIAL',
} as const;

export interface ClamdOptions {
  /** StreamMaxLength in bytes. Default 1 MiB. */
  streamMaxLength?: number;
  maxThreads?: number;
  maxQueue?: number;
  /** DB version in daily.cud's header. Default 27001. */
  dbVersion?: number;
  /** CommandReadTimeout, seconds. */
  commandReadTimeout?: number;
}

export interface RunningClamd {
  readonly dir: string;
  readonly port: number;
  readonly socketPath: string;
  readonly tcpEndpoint: string;
  pid(): number;
  /** ms from spawn until the first PONG, per start. */
  readonly startTimesMs: number[];
  log(): string;
  /** Sends `signal` to the daemon and waits for it to exit (bounded). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same config, sockets and DB. */
  restart(): Promise<void>;
  /** Rebuilds daily.cud with a new DB version and sends RELOAD; waits until VERSION shows it. */
  setDbVersion(version: number): Promise<void>;
  stop(): Promise<void>;
}

const hex = (b: Buffer): string => b.toString('hex');

function writeDatabase(dbDir: string, dbVersion: number): void {
  // EICAR's core only (not the whole 68 bytes), so EICAR inside a larger body matches too.
  const eicarCore = EICAR.subarray(EICAR.indexOf('EICAR-STANDARD'), EICAR.indexOf('!$H+H*'));
  writeFileSync(join(dbDir, 'icap-bridge-test.ndb'), `IcapBridge.Test.Eicar:0:*:${hex(eicarCore)}\nIcapBridge.Test.Body:0:*:${hex(BODY_MARKER)}\n`);
  const sha = createHash('sha256').update(HASH_FIXTURE).digest('hex');
  writeFileSync(join(dbDir, 'icap-bridge-test.hsb'), `${sha}:${HASH_FIXTURE.length}:IcapBridge.Test.Hash\n`);
  buildCud(dbDir, dbVersion);
}

/** daily.cud with DB version `version` (tools/clamd-offline.ts). */
function buildCud(dbDir: string, version: number): void {
  buildUnsignedCud(dbDir, version, 'IcapBridge.Test.DbVersion');
}

export { clamdCommand };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startClamd(options: ClamdOptions = {}): Promise<RunningClamd> {
  const layout = makePrivateClamdDir('icap-bridge-clamd-');
  const { dir, dbDir, socketPath, logPath } = layout;
  writeDatabase(dbDir, options.dbVersion ?? 27001);
  const port = await freePort();
  const confPath = writePrivateClamdConf({
    ...layout,
    port,
    streamMaxLength: options.streamMaxLength ?? 1024 * 1024,
    maxThreads: options.maxThreads ?? 2,
    maxQueue: options.maxQueue ?? 16,
    readTimeoutS: 30,
    commandReadTimeoutS: options.commandReadTimeout ?? 10,
    extra: ['LogTime yes'],
  });

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const startTimesMs: number[] = [];

  async function launch(): Promise<void> {
    const started = performance.now();
    const proc = spawn(CLAMD_BIN, ['-c', confPath, '--foreground'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let gone = false;
    exited = new Promise((resolve) => proc.once('exit', () => ((gone = true), resolve())));
    child = proc;
    // Bounded readiness poll: loading a small DB takes about a second.
    try {
      await waitFor(
        'clamd to answer PING',
        async () => {
          if (gone) throw new Error('clamd exited');
          return (await clamdCommand(socketPath, 'PING', 500)) === 'PONG';
        },
        { timeoutMs: 30_000 },
      );
    } catch (err) {
      if (!gone) proc.kill('SIGKILL');
      const log = existsSync(logPath) ? readFileSync(logPath, 'utf8').slice(-2000) : '';
      throw new Error(`clamd did not become ready (${(err as Error).message})\n${stderr}\n${log}`);
    }
    startTimesMs.push(Math.round(performance.now() - started));
  }

  async function kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = child;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timeout = sleep(10_000).then(() => 'timeout' as const);
    if ((await Promise.race([exited, timeout])) === 'timeout') {
      proc.kill('SIGKILL');
      await exited;
    }
    child = null;
  }

  await launch();

  return {
    dir,
    port,
    socketPath,
    tcpEndpoint: `127.0.0.1:${port}`,
    pid: () => child?.pid ?? -1,
    startTimesMs,
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
    kill,
    restart: async () => {
      await kill('SIGTERM');
      await launch();
    },
    setDbVersion: async (version) => {
      buildCud(dbDir, version);
      await clamdCommand(socketPath, 'RELOAD');
      await waitFor(`clamd to load DB version ${version}`, async () => (await clamdCommand(socketPath, 'VERSION'))?.includes(`/${version}/`), {
        timeoutMs: 10_000,
      });
    },
    stop: async () => {
      await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
