/**
 * `transfer: path` against real, private clamd daemons (test/helpers/clamd.ts): clamd reads the
 * spooled body itself (zSCAN <path>). In-memory bodies (a per-scan copy) and bodies spooled to
 * disk, clean and infected; a file clamd cannot read falls back to INSTREAM and still gets the
 * right verdict; no file is left behind; the config key; and RESPMOD end to end through the server.
 *
 * "Cannot read" is made deterministic per environment: as root, a second clamd runs as `nobody`
 * (the only way a root-run test gets a clamd that is refused anything); otherwise the test's
 * own clamd meets a chmod 000 file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ScanMeta } from '../../src/backends/backend.js';
import { createClamdBackend, type ClamdBackend, type ClamdBackendConfig } from '../../src/backends/clamd/clamd-backend.js';
import { CLAMD_POOL_DEFAULTS } from '../../src/backends/clamd/clamd-config.js';
import { liveScanFiles } from '../../src/backends/clamd/scan-file.js';
import { poolSettings } from '../../src/backends/pool/pool-settings.js';
import { BodySpool, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';
import { clamdCommand, writePrivateClamdConf } from '../../tools/clamd-offline.js';
import { configError } from '../config/helpers.js';
import { CLAMD_BIN, EICAR, HAVE_CLAMD, SIG, startClamd, type RunningClamd } from '../helpers/clamd.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, httpResponseHead } from '../helpers/icap-messages.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

const META: ScanMeta = { transactionId: 't-clamd-path', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const MiB = 1024 * 1024;
const IS_ROOT = process.getuid?.() === 0;
const NOBODY = { uid: 65534, gid: 65534 };

let clamd: RunningClamd;
const work = mkdtempSync(join(tmpdir(), 'icap-bridge-clamd-path-'));
const backends: ClamdBackend[] = [];

/** Filler that cannot contain a signature by accident. */
function filler(size: number): Buffer {
  return Buffer.alloc(size, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
}

function config(endpoints: string[], overrides: Partial<ClamdBackendConfig> = {}): ClamdBackendConfig {
  return {
    ...poolSettings(CLAMD_POOL_DEFAULTS, { health_interval_ms: 60_000 }),
    endpoints,
    stream_max_bytes: 16 * MiB,
    chunk_bytes: 65_536,
    connect_timeout_ms: 1000,
    read_timeout_ms: 20_000,
    version_command: true,
    transfer: 'path',
    ...overrides,
  };
}

async function pathBackend(endpoint: string, spoolDirectory: string) {
  const warnings: string[] = [];
  const b = await createClamdBackend('clamav', config([endpoint]), { spoolDirectory, warn: (m) => warnings.push(m) });
  backends.push(b);
  return { b, warnings };
}

let dirs = 0;
function newDir(mode = 0o700): string {
  const d = join(work, `spool-${dirs++}`);
  mkdirSync(d);
  chmodSync(d, mode);
  return d;
}

const signal = (): AbortSignal => new AbortController().signal;

/** clamd writes its log a little after the reply: wait (bounded) for the line. */
async function logShows(line: string | RegExp): Promise<void> {
  await waitFor(`clamd's log to show ${String(line)}`, () => (typeof line === 'string' ? clamd.log().includes(line) : line.test(clamd.log())));
}

/** Spools `bytes` to a file in `directory` (memory threshold 64 KiB), as a transaction would. */
async function spoolToDisk(bytes: Buffer, directory: string): Promise<{ body: SpooledBody; dispose: () => Promise<void> }> {
  const spool = new BodySpool({ memoryBytes: 64 * 1024, directory });
  for (let at = 0; at < bytes.length; at += 256 * 1024) {
    if (!spool.write(bytes.subarray(at, at + 256 * 1024))) await new Promise((r) => spool.once('drain', r));
  }
  return { body: await spool.end(), dispose: () => spool.dispose() };
}

beforeAll(async () => {
  if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
  chmodSync(work, 0o755);
  clamd = await startClamd({ streamMaxLength: 16 * MiB });
});

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
  expect([...liveScanFiles()]).toEqual([]);
});

afterAll(async () => {
  await clamd?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('transfer: path with a clamd that can read the spool', () => {
  it('in memory: clean → clean, EICAR → infected with the signature name; scanned by path, the copy removed', async () => {
    const spool = newDir();
    const { b, warnings } = await pathBackend(clamd.socketPath, spool);
    expect(b.openStream).toBeUndefined();
    expect(await b.scan(spooledBodyFromBuffer(filler(100_000)), META, signal())).toMatchObject({ outcome: 'clean', backend: 'clamav' });
    expect(await b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
    expect(b.transferStatus()).toEqual({ mode: 'path', scannedByPath: 2, fallbacks: 0, lastFallbackReason: null });
    // clamd logs a detection with the path it read (an INSTREAM one would say "stream").
    await logShows(new RegExp(`${spool}/icap-bridge-[0-9a-f]{24}\\.scan: ${SIG.eicar.replace(/\./g, '\\.')} FOUND`));
    expect(warnings).toEqual([]);
    expect(readdirSync(spool)).toEqual([]);
  });

  it.each(['tcp', 'unix'] as const)('spooled to disk (%s): clean and infected, clamd reads the spool file itself', async (transport) => {
    const spool = newDir();
    const { b } = await pathBackend(transport === 'tcp' ? clamd.tcpEndpoint : clamd.socketPath, spool);
    const clean = await spoolToDisk(filler(3 * MiB), spool);
    const infected = await spoolToDisk(Buffer.concat([filler(2 * MiB), EICAR, filler(MiB)]), spool);
    try {
      expect(clean.body.path).not.toBeNull();
      expect(await b.scan(clean.body, META, signal())).toMatchObject({ outcome: 'clean' });
      expect(await b.scan(infected.body, META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
      await logShows(`${infected.body.path}: ${SIG.eicar} FOUND`);
      expect(b.transferStatus()).toMatchObject({ scannedByPath: 2, fallbacks: 0 });
    } finally {
      await clean.dispose();
      await infected.dispose();
    }
    expect(readdirSync(spool)).toEqual([]);
  });
});

/** A second private clamd running as `nobody` (root only): it can read only what `nobody` may. */
async function startClamdAsNobody(): Promise<{ socketPath: string; stop(): Promise<void> }> {
  const base = join(work, 'nobody-clamd');
  const db = join(base, 'db');
  const run = join(base, 'run');
  mkdirSync(db, { recursive: true });
  mkdirSync(run);
  chmodSync(base, 0o755);
  chmodSync(db, 0o755);
  chownSync(run, NOBODY.uid, NOBODY.gid);
  const core = EICAR.subarray(EICAR.indexOf('EICAR-STANDARD'), EICAR.indexOf('!$H+H*'));
  writeFileSync(join(db, 'icap-bridge-test.ndb'), `IcapBridge.Test.Eicar:0:*:${core.toString('hex')}\n`, { mode: 0o644 });
  const socketPath = join(run, 'clamd.sock');
  const conf = writePrivateClamdConf({
    dir: run,
    dbDir: db,
    socketPath,
    logPath: join(run, 'clamd.log'),
    // clamd's own default: the INSTREAM fallback carries bodies over 1 MiB here.
    streamMaxLength: 100 * 1024 * 1024,
    maxThreads: 2,
    maxQueue: 16,
    readTimeoutS: 30,
    commandReadTimeoutS: 10,
    user: 'nobody',
  });
  const child: ChildProcess = spawn(CLAMD_BIN, ['-c', conf, '--foreground'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    await waitFor('clamd (as nobody) to answer PING', async () => (await clamdCommand(socketPath, 'PING', 500)) === 'PONG', { timeoutMs: 30_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { socketPath, stop };
}

describe('transfer: path with a clamd that cannot read the file → INSTREAM', () => {
  it.runIf(IS_ROOT)('clamd as nobody, spool directory 0700: refused ("File path check failure"), INSTREAM answers; one warning', async () => {
    const nobody = await startClamdAsNobody();
    try {
      const spool = newDir(0o700);
      const { b, warnings } = await pathBackend(nobody.socketPath, spool);
      expect(await b.scan(spooledBodyFromBuffer(filler(50_000)), META, signal())).toMatchObject({ outcome: 'clean' });
      expect(await b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
      const disk = await spoolToDisk(Buffer.concat([filler(MiB), EICAR]), spool);
      try {
        expect(await b.scan(disk.body, META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
      } finally {
        await disk.dispose();
      }
      const status = b.transferStatus();
      console.log(`clamd as nobody, 0700 spool: ${JSON.stringify(status)}; warning: ${warnings[0]}`);
      expect(status).toMatchObject({ scannedByPath: 0, fallbacks: 3, lastFallbackReason: expect.stringContaining('Permission denied') });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('File path check failure');
      expect(readdirSync(spool)).toEqual([]);

      // Group access, as the README advises: a setgid spool directory of clamd's group. The
      // per-scan copies (0640) are read by path; the spool's own files (0600) are refused ("Access denied").
      const shared = newDir(0o750);
      chownSync(shared, 0, NOBODY.gid);
      chmodSync(shared, 0o2750);
      const grouped = await pathBackend(nobody.socketPath, shared);
      expect(await grouped.b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
      expect(grouped.b.transferStatus()).toMatchObject({ scannedByPath: 1, fallbacks: 0 });
      const spilled = await spoolToDisk(Buffer.concat([filler(MiB), EICAR]), shared);
      try {
        expect(await grouped.b.scan(spilled.body, META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
      } finally {
        await spilled.dispose();
      }
      expect(grouped.b.transferStatus()).toMatchObject({ scannedByPath: 1, fallbacks: 1, lastFallbackReason: 'clamd: Access denied. ERROR' });
      expect(readdirSync(shared)).toEqual([]);
    } finally {
      await nobody.stop();
    }
  });

  it.runIf(!IS_ROOT)('a chmod 000 file: refused ("Access denied"), INSTREAM answers; one warning', async () => {
    const spool = newDir();
    const { b, warnings } = await pathBackend(clamd.socketPath, spool);
    const path = join(spool, 'unreadable.body');
    for (const bytes of [filler(10_000), EICAR]) {
      writeFileSync(path, bytes);
      chmodSync(path, 0o000);
      // The bytes come from memory (we cannot read the file either); clamd gets the path.
      const body: SpooledBody = { size: bytes.length, memory: null, memoryPieces: null, path, createReadStream: () => Readable.from([bytes]) };
      const expected = bytes === EICAR ? { outcome: 'infected', threats: [SIG.eicar] } : { outcome: 'clean' };
      expect(await b.scan(body, META, signal())).toMatchObject(expected);
      rmSync(path, { force: true });
    }
    expect(b.transferStatus()).toMatchObject({ scannedByPath: 0, fallbacks: 2, lastFallbackReason: expect.stringContaining('Access denied') });
    expect(warnings).toHaveLength(1);
  });

  it('a spool path clamd is never asked about (missing) → INSTREAM answers', async () => {
    const { b } = await pathBackend(clamd.socketPath, newDir());
    const body: SpooledBody = { size: EICAR.length, memory: null, memoryPieces: null, path: join(work, 'no-such-file'), createReadStream: () => Readable.from([EICAR]) };
    expect(await b.scan(body, META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
    expect(b.transferStatus()).toMatchObject({ fallbacks: 1 });
  });
});

describe('config', () => {
  it('transfer must be instream or path, named by its key path', () => {
    const yaml = (value: string) =>
      `backends:\n  av1:\n    type: clamd\n    endpoints: ["/run/clamav/clamd.ctl"]\n    transfer: ${value}\nservices:\n  respmod:\n    backends: [av1]\n`;
    expect(configError(yaml('fildes')).problems).toContainEqual({ path: 'backends.av1.transfer', rule: expect.stringContaining('must be one of: instream, path') });
  });
});

describe('RESPMOD through the server with transfer: path', () => {
  let srv: TestServer | undefined;

  beforeAll(async () => {
    srv = await startTestServer(`backends:
  clamav:
    type: clamd
    endpoints: [${JSON.stringify(clamd.socketPath)}]
    transfer: path
    stream_max_bytes: ${16 * MiB}
services:
  respmod:
    methods: [RESPMOD]
    backends: [clamav]
    commit_on_idle: { enabled: false }
`);
  });

  afterAll(async () => {
    await srv?.close();
  });

  async function respmod(payload: Buffer) {
    const { first } = buildRequest({ resHdr: httpResponseHead(payload.length), body: [payload], headers: [['Allow', '204']] });
    const record = srv!.nextRecord();
    const c = await TestClient.connect(srv!.port);
    try {
      c.write(first);
      return { response: await c.read(20_000), record: await record };
    } finally {
      c.close();
    }
  }

  it('1 MiB clean → 204; EICAR → blocked; scanned by path; the spool directory empty', async () => {
    const clean = await respmod(filler(MiB));
    expect(clean.response.status).toBe(204);
    expect(clean.record).toMatchObject({ verdict: 'clean', scans: [expect.objectContaining({ backend: 'clamav', outcome: 'clean' })] });

    const infected = await respmod(Buffer.concat([filler(MiB - EICAR.length), EICAR]));
    expect(infected.response.status).toBe(200);
    expect(infected.record).toMatchObject({ verdict: 'infected', http_status: 403, threats: [SIG.eicar] });
    // The body reached clamd as a file in the server's spool directory.
    await logShows(new RegExp(`${srv!.spoolDir}/icap-bridge-[0-9a-f]{24}\\.(scan|body): ${SIG.eicar.replace(/\./g, '\\.')} FOUND`));

    const big = await respmod(filler(3 * MiB));
    expect(big.response.status).toBe(204);
    // The transaction disposes its spool after the answer went out.
    await waitFor('the spool directory to be empty', () => readdirSync(srv!.spoolDir).length === 0);
  });
});
