/**
 * `transfer: path` against a scripted clamd stand-in on a UNIX socket: what the SCAN command
 * names, the per-scan copy of an in-memory body (mode, content, removal on every path), the
 * fallback to INSTREAM when clamd cannot read the file (one warning per backend), errors that
 * must not fall back, abort, replay after a lost connection. The real daemon: test/integration/clamd-path.test.ts.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ScanMeta } from '../../src/backends/backend.js';
import { createClamdBackend, type ClamdBackend, type ClamdBackendConfig } from '../../src/backends/clamd/clamd-backend.js';
import { liveScanFiles, SCAN_FILE_MODE } from '../../src/backends/clamd/scan-file.js';
import { clamdTestConfig } from '../helpers/clamd-backend-config.js';
import { BodySpool, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';

const META: ScanMeta = { transactionId: 't-path', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-clamd-path-'));
let seq = 0;

/** What the stand-in answers to `zSCAN <path>`; the file is read (if it can be) while the command is handled. */
type ScanAnswer = (path: string, content: Buffer | null) => string | 'hang' | 'crash';

interface SeenScan {
  path: string;
  content: Buffer | null;
  mode: number | null;
}

interface Fake {
  endpoint: string;
  answer: ScanAnswer;
  scans: SeenScan[];
  instreams: Buffer[];
  close(): Promise<void>;
}

const fakes: Fake[] = [];
const backends: ClamdBackend[] = [];

/** INSTREAM: "EVIL" anywhere → FOUND, else OK. SCAN: `answer`. PING/VERSION as clamd. */
async function fakeClamd(answer: ScanAnswer): Promise<Fake> {
  const sockets = new Set<Socket>();
  const fake: Fake = {
    endpoint: join(dir, `fake-${seq++}.sock`),
    answer,
    scans: [],
    instreams: [],
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let command: string | null = null;
    const body: Buffer[] = [];
    socket.on('data', (data: Buffer) => {
      buf = Buffer.concat([buf, data]);
      if (command === null) {
        const nul = buf.indexOf(0);
        if (nul === -1) return;
        command = buf.subarray(0, nul).toString('utf8');
        buf = buf.subarray(nul + 1);
        if (command === 'zPING') return void socket.end('PONG\0');
        if (command === 'zVERSION') return void socket.end('ClamAV 9.9.9/1/today\0');
        if (command.startsWith('zSCAN ')) {
          const path = command.slice('zSCAN '.length);
          let content: Buffer | null = null;
          let mode: number | null = null;
          try {
            content = readFileSync(path);
            mode = statSync(path).mode & 0o777;
          } catch {
            content = null;
          }
          fake.scans.push({ path, content, mode });
          const reply = fake.answer(path, content);
          if (reply === 'crash') socket.destroy();
          else if (reply !== 'hang') socket.end(`${reply}\0`);
          return;
        }
        if (command !== 'zINSTREAM') return void socket.end('UNKNOWN COMMAND\0');
      }
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len === 0) {
          const whole = Buffer.concat(body);
          fake.instreams.push(whole);
          socket.end(whole.includes('EVIL') ? 'stream: Fake.Evil FOUND\0' : 'stream: OK\0');
          return;
        }
        if (buf.length < 4 + len) return;
        body.push(buf.subarray(4, 4 + len));
        buf = buf.subarray(4 + len);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(fake.endpoint, resolve));
  fakes.push(fake);
  return fake;
}

/** A clamd that reads the file: FOUND when it holds "EVIL", OK otherwise; "Access denied" when there is no file. */
const reads: ScanAnswer = (path, content) =>
  content === null ? `${path}: Access denied. ERROR` : content.includes('EVIL') ? `${path}: Fake.Evil FOUND` : `${path}: OK`;

function config(endpoints: string[], overrides: Partial<ClamdBackendConfig> = {}): ClamdBackendConfig {
  return clamdTestConfig(endpoints, { transfer: 'path', ...overrides });
}

async function backendFor(endpoints: string[], spoolDirectory: string, overrides: Partial<ClamdBackendConfig> = {}) {
  const warnings: string[] = [];
  const b = await createClamdBackend('clamav', config(endpoints, overrides), { spoolDirectory, warn: (m) => warnings.push(m) });
  backends.push(b);
  return { b, warnings };
}

function spoolDir(): string {
  const d = join(dir, `spool-${seq++}`);
  mkdirSync(d);
  return d;
}

const signal = (): AbortSignal => new AbortController().signal;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A body that says it lives at `path` and reads its bytes from memory (for paths clamd must not get). */
function bodyAt(path: string, bytes: Buffer): SpooledBody {
  return { size: bytes.length, memory: null, memoryPieces: null, path, createReadStream: () => Readable.from([bytes]) };
}

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
  expect([...liveScanFiles()]).toEqual([]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('transfer: path', () => {
  it('an in-memory body: a 0640 copy in the spool directory is scanned by path, then removed; no openStream', async () => {
    const fake = await fakeClamd(reads);
    const spool = spoolDir();
    const { b, warnings } = await backendFor([fake.endpoint], spool);
    expect(b.openStream).toBeUndefined();

    const clean = Buffer.from('a harmless body');
    expect(await b.scan(spooledBodyFromBuffer(clean), META, signal())).toMatchObject({ outcome: 'clean', endpoint: fake.endpoint });
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('xxEVILxx')), META, signal())).toMatchObject({ outcome: 'infected', threats: ['Fake.Evil'] });

    expect(fake.scans).toHaveLength(2);
    expect(fake.scans[0]).toEqual({ path: expect.stringMatching(new RegExp(`^${spool}/icap-bridge-[0-9a-f]{24}\\.scan$`)), content: clean, mode: SCAN_FILE_MODE });
    expect(fake.instreams).toEqual([]);
    expect(readdirSync(spool)).toEqual([]);
    expect(warnings).toEqual([]);
    expect(b.transferStatus()).toEqual({ mode: 'path', scannedByPath: 2, fallbacks: 0, lastFallbackReason: null });
  });

  it('an in-memory spool body: the copy is scanned, then adopted by the body (memory let go) and removed with it', async () => {
    const fake = await fakeClamd(reads);
    const spool = spoolDir();
    const { b } = await backendFor([fake.endpoint], spool);
    const writer = new BodySpool({ memoryBytes: 1024, directory: spool });
    const bytes = Buffer.from('an in-memory body with EVIL inside');
    writer.write(bytes);
    const body = await writer.end();
    try {
      expect(body.memory).toEqual(bytes);
      expect(await b.scan(body, META, signal())).toMatchObject({ outcome: 'infected', threats: ['Fake.Evil'] });
      const scanned = fake.scans[0]!;
      expect(scanned).toEqual({ path: expect.stringMatching(/\.scan$/), content: bytes, mode: SCAN_FILE_MODE });
      // The body reads from the copy now; the scan did not remove it, the spool will.
      expect(body.path).toBe(scanned.path);
      expect(body.memory).toBeNull();
      const read: Buffer[] = [];
      for await (const chunk of body.createReadStream()) read.push(chunk as Buffer);
      expect(Buffer.concat(read)).toEqual(bytes);
      expect(readdirSync(spool)).toHaveLength(1);
      // A second scan of the same body goes by the adopted file, with no new copy.
      expect(await b.scan(body, META, signal())).toMatchObject({ outcome: 'infected' });
      expect(fake.scans.map((s) => s.path)).toEqual([scanned.path, scanned.path]);
    } finally {
      await writer.dispose();
    }
    expect(readdirSync(spool)).toEqual([]);
  });

  it('a body spooled to disk: its own spool file is scanned, and left to the spool', async () => {
    const fake = await fakeClamd(reads);
    const spool = spoolDir();
    const { b } = await backendFor([fake.endpoint], spool);
    const writer = new BodySpool({ memoryBytes: 10, directory: spool });
    writer.write(Buffer.from('a body bigger than ten bytes, EVIL inside'));
    const body = await writer.end();
    try {
      expect(body.path).not.toBeNull();
      expect(await b.scan(body, META, signal())).toMatchObject({ outcome: 'infected', threats: ['Fake.Evil'] });
      expect(fake.scans.map((s) => s.path)).toEqual([body.path]);
      expect(readdirSync(spool)).toHaveLength(1);
    } finally {
      await writer.dispose();
    }
  });

  it('clamd cannot read the file → INSTREAM from the spool; the verdict is INSTREAM\'s; one warning per backend', async () => {
    const fake = await fakeClamd((path) => `${path}: File path check failure: Permission denied. ERROR`);
    const spool = spoolDir();
    const { b, warnings } = await backendFor([fake.endpoint], spool);
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('clean bytes')), META, signal())).toMatchObject({ outcome: 'clean' });
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('EVIL bytes')), META, signal())).toMatchObject({ outcome: 'infected', threats: ['Fake.Evil'] });
    expect(fake.scans).toHaveLength(2);
    expect(fake.instreams.map((x) => x.toString())).toEqual(['clean bytes', 'EVIL bytes']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('backend clamav');
    expect(warnings[0]).toContain('File path check failure: Permission denied');
    expect(b.transferStatus()).toMatchObject({ scannedByPath: 0, fallbacks: 2, lastFallbackReason: 'clamd: File path check failure: Permission denied. ERROR' });
    expect(readdirSync(spool)).toEqual([]);
  });

  it.each(['Excluded', 'Access denied. ERROR'])('"%s" → INSTREAM too', async (text) => {
    const fake = await fakeClamd((path) => `${path}: ${text}`);
    const { b, warnings } = await backendFor([fake.endpoint], spoolDir());
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('EVIL')), META, signal())).toMatchObject({ outcome: 'infected' });
    expect(warnings).toHaveLength(1);
  });

  it('a scan error on a file clamd did read is the result (no resend), never clean', async () => {
    const fake = await fakeClamd((path) => `${path}: Can't allocate memory ERROR`);
    const { b, warnings } = await backendFor([fake.endpoint], spoolDir());
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, signal())).toMatchObject({ outcome: 'error', kind: 'backend-error' });
    expect(fake.instreams).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('a reply about another path is an error, never clean', async () => {
    const fake = await fakeClamd(() => '/somewhere/else: OK');
    const { b } = await backendFor([fake.endpoint], spoolDir());
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, signal())).toMatchObject({ outcome: 'error', kind: 'backend-error' });
  });

  it('no spool directory to write the copy → INSTREAM, with the reason', async () => {
    const fake = await fakeClamd(reads);
    const { b, warnings } = await backendFor([fake.endpoint], join(dir, 'missing-dir'));
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('EVIL')), META, signal())).toMatchObject({ outcome: 'infected' });
    expect(fake.scans).toEqual([]);
    expect(warnings[0]).toContain('cannot write a file for clamd');
  });

  it('a spool path that is a symlink (clamd would answer OK unscanned) or missing → INSTREAM, not SCAN', async () => {
    const fake = await fakeClamd(reads);
    const spool = spoolDir();
    const target = join(spool, 'target');
    writeFileSync(target, 'EVIL');
    symlinkSync(target, join(spool, 'link'));
    const { b } = await backendFor([fake.endpoint], spool);
    expect(await b.scan(bodyAt(join(spool, 'link'), Buffer.from('EVIL')), META, signal())).toMatchObject({ outcome: 'infected' });
    expect(await b.scan(bodyAt(join(spool, 'gone'), Buffer.from('EVIL')), META, signal())).toMatchObject({ outcome: 'infected' });
    expect(fake.scans).toEqual([]);
    expect(fake.instreams).toHaveLength(2);
    expect(b.transferStatus()).toMatchObject({ fallbacks: 2, lastFallbackReason: expect.stringContaining('gone') });
  });

  it('too large for stream_max_bytes → too-large before anything is written or sent', async () => {
    const fake = await fakeClamd(reads);
    const spool = spoolDir();
    const { b } = await backendFor([fake.endpoint], spool, { stream_max_bytes: 4 });
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('12345')), META, signal())).toMatchObject({ outcome: 'error', kind: 'too-large' });
    expect(fake.scans).toEqual([]);
    expect(readdirSync(spool)).toEqual([]);
  });

  it('abort while clamd scans: an error, the copy removed, no warning', async () => {
    const fake = await fakeClamd(() => 'hang');
    const spool = spoolDir();
    const { b, warnings } = await backendFor([fake.endpoint], spool);
    const ac = new AbortController();
    const pending = b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, ac.signal);
    for (let i = 0; i < 100 && fake.scans.length === 0; i++) await sleep(10);
    expect(readdirSync(spool)).toHaveLength(1);
    ac.abort(new Error('client went away'));
    expect(await pending).toMatchObject({ outcome: 'error', message: expect.stringContaining('client went away') });
    expect(readdirSync(spool)).toEqual([]);
    expect(warnings).toEqual([]);
    expect(fake.instreams).toEqual([]);
  });

  it('no reply within read_timeout_ms → timeout, the copy removed', async () => {
    const fake = await fakeClamd(() => 'hang');
    const spool = spoolDir();
    const { b } = await backendFor([fake.endpoint], spool, { read_timeout_ms: 200 });
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, signal())).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(readdirSync(spool)).toEqual([]);
  });

  it('connection lost on one clamd → the SCAN is replayed on the other', async () => {
    const dying = await fakeClamd(() => 'crash');
    const healthy = await fakeClamd(reads);
    const { b } = await backendFor([dying.endpoint, healthy.endpoint], spoolDir(), { eject_after: 100 });
    for (let i = 0; i < 4; i++) {
      expect(await b.scan(spooledBodyFromBuffer(Buffer.from('EVIL')), META, signal())).toMatchObject({ outcome: 'infected', endpoint: healthy.endpoint });
    }
    expect(dying.scans.length).toBeGreaterThan(0);
    expect(healthy.instreams).toEqual([]);
  });
});
