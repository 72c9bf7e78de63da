/**
 * The MetaDefender adapter against the emulator (emulators/metadefender/): verdicts, every
 * injected failure, pinning of polls to the accepting node, sanitized downloads, hash lookups,
 * and uploads that always carry a Content-Length. Everything on loopback, bounded in time.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta } from '../../src/backends/backend.js';
import { EICAR_SIGNATURE } from '../../src/backends/builtin/eicar.js';
import { createMetaDefenderBackend, type MetaDefenderBackendOptions } from '../../src/backends/metadefender/metadefender-backend.js';
import { BodySpool, liveSpoolFiles, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';
import { startEmulator, type EmulatorHandle, type RequestLogEntry } from '../../emulators/metadefender/emulator.js';
import type { EmulatorOptions } from '../../emulators/metadefender/config.js';
import { SANITIZED_MARKER } from '../../emulators/metadefender/scanner.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const META: ScanMeta = { transactionId: 'tx-42', method: 'RESPMOD', clientAddress: '10.1.2.3', url: 'http://origin.example/dl/report%20Q1.txt?x=1' };
const CLEAN = Buffer.from('just some harmless text\n');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let emulators: EmulatorHandle[] = [];
let backends: Backend[] = [];
const spools: BodySpool[] = [];

async function emulator(options: EmulatorOptions = {}): Promise<EmulatorHandle> {
  const em = await startEmulator({ scanDurationMs: 30, ...options });
  emulators.push(em);
  return em;
}

async function backendFor(ems: readonly (EmulatorHandle | string)[], overrides: Partial<MetaDefenderBackendOptions> = {}): Promise<Backend> {
  const b = await createMetaDefenderBackend({
    name: 'core',
    endpoints: ems.map((e) => (typeof e === 'string' ? e : e.url)),
    apikey: '',
    rule: '',
    timeoutMs: 5_000,
    pollInitialMs: 5,
    pollMaxMs: 40,
    hashLookup: false,
    sanitize: false,
    maxFileBytes: 0,
    spool: { memoryBytes: 64 * 1024, directory: dir },
    pool: { health_interval_ms: 0 },
    ...overrides,
  });
  backends.push(b);
  return b;
}

function scan(b: Backend, body: Buffer | SpooledBody, meta: ScanMeta = META, signal = new AbortController().signal): Promise<BackendResult> {
  return b.scan(Buffer.isBuffer(body) ? spooledBodyFromBuffer(body) : body, meta, signal);
}

function requests(em: EmulatorHandle, route: RequestLogEntry['route']): RequestLogEntry[] {
  return em.stats.requests.filter((r) => r.route === route);
}

/** A body written through a real spool with no memory: it lives in a temp file. */
async function onDisk(data: Buffer): Promise<SpooledBody> {
  const spool = new BodySpool({ memoryBytes: 0, directory: dir });
  spools.push(spool);
  for (let at = 0; at < data.length; at += 256 * 1024) {
    if (!spool.write(data.subarray(at, at + 256 * 1024))) await new Promise((resolve) => spool.once('drain', resolve));
  }
  return spool.end();
}

/** A port with nothing listening. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-md-test-'));
});

afterEach(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(emulators.map((e) => e.close()));
  backends = [];
  emulators = [];
});

afterAll(async () => {
  await Promise.all(spools.map((s) => s.dispose()));
  expect(liveSpoolFiles().size).toBe(0);
  await rm(dir, { recursive: true, force: true });
});

describe('verdicts', () => {
  it('clean, with the submit headers the spec lists', async () => {
    const em = await emulator();
    const b = await backendFor([em], { rule: 'File scan' });
    const r = await scan(b, CLEAN);
    expect(r).toMatchObject({ outcome: 'clean', backend: 'core', sha256: sha256(CLEAN) });
    const [submit] = requests(em, 'submit');
    expect(submit!.headers).toMatchObject({
      'content-type': 'application/octet-stream',
      'content-length': String(CLEAN.length),
      filename: 'report%20Q1.txt',
      rule: 'File%20scan',
      user_agent: 'icap-bridge',
    });
    expect(JSON.parse(submit!.headers['metadata']!)).toEqual({ icap_client: '10.1.2.3', req_id: 'tx-42' });
    expect(submit!.headers['transfer-encoding']).toBeUndefined();
  });

  it('EICAR: infected with every engine\'s threat name', async () => {
    const em = await emulator();
    const b = await backendFor([em]);
    const body = Buffer.concat([Buffer.from('prefix '), EICAR_SIGNATURE, Buffer.from(' suffix')]);
    expect(await scan(b, body)).toMatchObject({ outcome: 'infected', threats: ['Win.Test.EICAR_HDB-1', 'EICAR-Test-File'] });
  });

  it('a configured SHA-256 is infected with its name', async () => {
    const bad = Buffer.from('a file everybody knows is bad\n');
    const em = await emulator({ hashes: [{ sha256: sha256(bad), name: 'Trojan.Listed-1' }] });
    const b = await backendFor([em]);
    expect(await scan(b, bad)).toMatchObject({ outcome: 'infected', threats: ['Trojan.Listed-1'] });
  });

  it('polls with back-off while progress rises, and only then answers', async () => {
    const em = await emulator({ scanDurationMs: 300 });
    const b = await backendFor([em], { pollInitialMs: 10, pollMaxMs: 80 });
    const started = Date.now();
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'clean' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const polls = requests(em, 'poll');
    // 10, 20, 40, 80, 80, 80... ms: about 6–8 polls for 300 ms, far fewer than at a fixed 10 ms.
    expect(polls.length).toBeGreaterThanOrEqual(4);
    expect(polls.length).toBeLessThanOrEqual(12);
  });

  it('a large body from a temp file is streamed with its Content-Length', async () => {
    const em = await emulator();
    const b = await backendFor([em]);
    const data = Buffer.alloc(3 * 1024 * 1024 + 17, 'abcdefghij');
    EICAR_SIGNATURE.copy(data, 2 * 1024 * 1024);
    const body = await onDisk(data);
    expect(body.path).not.toBeNull();
    expect(await scan(b, body)).toMatchObject({ outcome: 'infected' });
    expect(requests(em, 'submit')[0]!.headers['content-length']).toBe(String(data.length));
  });

  it('never uploads chunked (the emulator would answer 411)', async () => {
    const em = await emulator();
    const b = await backendFor([em]);
    await scan(b, CLEAN);
    await scan(b, await onDisk(Buffer.alloc(200_000, 'z')));
    const submits = requests(em, 'submit');
    expect(submits).toHaveLength(2);
    for (const s of submits) {
      expect(s.headers['content-length']).toMatch(/^\d+$/);
      expect(s.headers['transfer-encoding']).toBeUndefined();
      expect(s.status).toBe(200);
    }
    expect(em.stats.chunkedRejected).toBe(0);
  });

  it('waits for Core\'s policy stages (§3): a poll with the AV part done and clean is not the verdict', async () => {
    const em = await emulator({
      scanDurationMs: 0,
      postProcessing: { durationMs: 250 },
      sanitize: { filenameSuffixes: ['.docx'] },
      resultRules: [{ filenameSuffix: '.xlsx', code: 17, blockedReason: 'File Type Mismatch' }],
    });
    const b = await backendFor([em], { sanitize: true, pollInitialMs: 10, pollMaxMs: 40 });
    const started = Date.now();
    const mismatch = await scan(b, CLEAN, { ...META, url: 'http://origin.example/files/book.xlsx' });
    expect(mismatch).toMatchObject({ outcome: 'infected', threats: ['File Type Mismatch'] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
    const sanitized = await scan(b, CLEAN, { ...META, url: 'http://origin.example/files/memo.docx' });
    expect(sanitized.outcome).toBe('sanitized');
    if (sanitized.outcome === 'sanitized') {
      expect((await collect(sanitized.body)).equals(Buffer.concat([SANITIZED_MARKER, CLEAN]))).toBe(true);
      await sanitized.dispose();
    }
    // Each job was polled while only its AV part was done, and downloaded only at the end.
    expect(requests(em, 'poll').length).toBeGreaterThanOrEqual(6);
    expect(requests(em, 'converted').map((r) => r.status)).toEqual([200]);
  });

  it('a body over max_file_bytes is too-large and not uploaded', async () => {
    const em = await emulator();
    const b = await backendFor([em], { maxFileBytes: 10 });
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'error', kind: 'too-large' });
    expect(requests(em, 'submit')).toHaveLength(0);
  });
});

describe('failure injection', () => {
  it('latency within the timeout: still a verdict', async () => {
    const em = await emulator({ faults: { latencyMs: 80 } });
    const b = await backendFor([em], { timeoutMs: 3_000 });
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'clean' });
  });

  it('latency over the timeout: timeout, promptly, and the job is cancelled', async () => {
    const em = await emulator({ scanDurationMs: 0, faults: { latencyMs: { poll: 1_000 } } });
    const b = await backendFor([em], { timeoutMs: 300 });
    const started = Date.now();
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(Date.now() - started).toBeLessThan(900);
    await expect.poll(() => requests(em, 'cancel').length, { timeout: 2_000 }).toBe(1);
  });

  it('503 on submit: the other endpoint takes the job', async () => {
    const busy = await emulator({ faults: { status503Rate: { submit: 1 } } });
    const ok = await emulator();
    const b = await backendFor([busy, ok]);
    for (let i = 0; i < 3; i++) expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'clean' });
    expect(requests(busy, 'submit').every((r) => r.status === 503)).toBe(true);
    expect(requests(busy, 'poll')).toHaveLength(0);
    expect(requests(ok, 'submit')).toHaveLength(3);
  });

  it('503 everywhere: overloaded after one retry', async () => {
    const a = await emulator({ faults: { status503Rate: { submit: 1 } } });
    const c = await emulator({ faults: { status503Rate: { submit: 1 } } });
    const b = await backendFor([a, c]);
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'error', kind: 'overloaded' });
    expect(requests(a, 'submit').length + requests(c, 'submit').length).toBe(2);
  });

  it('dropped connection on submit: retried on the other endpoint', async () => {
    const dropping = await emulator({ faults: { dropRate: { submit: 1 } } });
    const ok = await emulator();
    const b = await backendFor([dropping, ok]);
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'clean' });
    expect(requests(dropping, 'submit')[0]?.status).toBe('dropped');
    expect(requests(ok, 'submit')).toHaveLength(1);
    // Cooling down: the next job goes straight to the good endpoint.
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'clean' });
    expect(requests(dropping, 'submit')).toHaveLength(1);
  });

  it('dropped connections while polling: the job is resubmitted elsewhere, or unreachable', async () => {
    const dropping = await emulator({ faults: { dropRate: { poll: 1 } } });
    const ok = await emulator();
    const two = await backendFor([dropping, ok]);
    expect(await scan(two, CLEAN)).toMatchObject({ outcome: 'clean' });
    expect(requests(dropping, 'poll').length).toBe(3);
    expect(requests(ok, 'submit')).toHaveLength(1);

    const one = await backendFor([dropping]);
    expect(await scan(one, CLEAN)).toMatchObject({ outcome: 'error', kind: 'unreachable', message: expect.stringMatching(/polling failed 3 times/) });
  });

  it('connection refused: unreachable', async () => {
    const b = await backendFor([`http://127.0.0.1:${await deadPort()}`]);
    expect(b.status()[0]).toMatchObject({ healthy: false });
    expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'error', kind: 'unreachable' });
  });

  it('malformed JSON: backend-error, on submit and on poll', async () => {
    const badSubmit = await emulator({ faults: { malformedJsonRate: { submit: 1 } } });
    expect(await scan(await backendFor([badSubmit]), CLEAN)).toMatchObject({ kind: 'backend-error', message: expect.stringMatching(/malformed JSON/) });
    const badPoll = await emulator({ faults: { malformedJsonRate: { poll: 1 } } });
    expect(await scan(await backendFor([badPoll]), EICAR_SIGNATURE)).toMatchObject({ kind: 'backend-error', message: expect.stringMatching(/malformed JSON/) });
  });

  for (const notFoundStatus of [404, 200] as const) {
    it(`unknown data_id answered with ${notFoundStatus}: never clean`, async () => {
      const em = await emulator({ notFoundStatus, faults: { unknownDataIdRate: 1 } });
      const r = await scan(await backendFor([em]), CLEAN);
      expect(r).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringMatching(/no longer knows it \(HTTP /) });
      expect(requests(em, 'poll')[0]!.status).toBe(notFoundStatus);
    });
  }

  it('a job expired by retention: uploaded once more, the new job gives the verdict (§9)', async () => {
    const em = await emulator({ scanDurationMs: 200 });
    const b = await backendFor([em], { pollInitialMs: 50 });
    const pending = scan(b, EICAR_SIGNATURE);
    await expect.poll(() => requests(em, 'submit').length, { timeout: 2_000 }).toBe(1);
    em.forgetAll(); // as a restarted node would
    expect(await pending).toMatchObject({ outcome: 'infected' });
    expect(requests(em, 'submit')).toHaveLength(2);
  });
});

describe('several Core servers (§9)', () => {
  it('every poll of a job goes to the server that accepted it', async () => {
    const a = await emulator({ scanDurationMs: 60 });
    const c = await emulator({ scanDurationMs: 60 });
    const b = await backendFor([a, c], { pollInitialMs: 5, pollMaxMs: 10 });
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => scan(b, Buffer.from(`file ${i}\n`))));
    for (const r of results) expect(r.outcome).toBe('clean');
    expect(a.stats.acceptedIds.length).toBeGreaterThan(0);
    expect(c.stats.acceptedIds.length).toBeGreaterThan(0);
    expect(a.stats.acceptedIds.length + c.stats.acceptedIds.length).toBe(6);
    for (const em of [a, c]) {
      const polls = requests(em, 'poll');
      expect(polls.length).toBeGreaterThanOrEqual(em.stats.acceptedIds.length);
      for (const p of polls) {
        expect(em.stats.acceptedIds, `poll of ${p.id} on the wrong node`).toContain(p.id);
        expect(p.status).toBe(200);
      }
    }
  });

  it('hash lookups do not upset the rotation: uploads still alternate', async () => {
    const a = await emulator({ scanDurationMs: 0 });
    const c = await emulator({ scanDurationMs: 0 });
    const b = await backendFor([a, c], { hashLookup: true });
    for (let i = 0; i < 4; i++) expect(await scan(b, Buffer.from(`distinct ${i}\n`))).toMatchObject({ outcome: 'clean' });
    expect(requests(a, 'submit')).toHaveLength(2);
    expect(requests(c, 'submit')).toHaveLength(2);
  });

  it('the other node does not know a job (what pinning avoids)', async () => {
    const a = await emulator();
    const c = await emulator();
    const b = await backendFor([a]);
    await scan(b, CLEAN);
    const id = a.stats.acceptedIds[0]!;
    const res = await fetch(`${c.url}/file/${id}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ [id]: 'Not Found' });
  });
});

describe('sanitized files', () => {
  it('sanitize on: the converted file from the accepting node becomes the new body', async () => {
    const a = await emulator({ sanitize: { filenameSuffixes: ['.docx'] } });
    const c = await emulator({ sanitize: { filenameSuffixes: ['.docx'] } });
    const b = await backendFor([a, c], { sanitize: true });
    const original = Buffer.from('a document with active content\n');
    const meta = { ...META, url: 'http://origin.example/files/report.docx' };
    for (let i = 0; i < 2; i++) {
      const r = await scan(b, original, meta);
      expect(r.outcome).toBe('sanitized');
      if (r.outcome !== 'sanitized') return;
      const bytes = await collect(r.body);
      expect(bytes.equals(Buffer.concat([SANITIZED_MARKER, original]))).toBe(true);
      expect(r.body.size).toBe(bytes.length);
      expect(r.fileName).toBe('sanitized_report.docx');
      expect(r.contentType).toBe('application/octet-stream');
      expect(r.threats).toEqual([]);
      await r.dispose();
    }
    for (const em of [a, c]) {
      for (const d of requests(em, 'converted')) expect(em.stats.acceptedIds).toContain(d.id);
    }
    expect(requests(a, 'converted').length + requests(c, 'converted').length).toBe(2);
  });

  it('a large sanitized file is spooled to a temp file and removed by dispose()', async () => {
    const em = await emulator({ sanitize: { all: true } });
    const b = await backendFor([em], { sanitize: true });
    const data = Buffer.alloc(1024 * 1024, 'q');
    const r = await scan(b, data);
    expect(r.outcome).toBe('sanitized');
    if (r.outcome !== 'sanitized') return;
    expect(r.body.memory).toBeNull();
    expect(r.body.path).not.toBeNull();
    expect(liveSpoolFiles().has(r.body.path!)).toBe(true);
    const onDiskBytes = await readFile(r.body.path!);
    expect(onDiskBytes.length).toBe(data.length + SANITIZED_MARKER.length);
    await r.dispose();
    expect(liveSpoolFiles().has(r.body.path!)).toBe(false);
  });

  it('MetaDefender Cloud\'s sanitized.file_path link is used when present', async () => {
    const em = await emulator({ sanitize: { all: true, cloudObject: true } });
    const b = await backendFor([em], { sanitize: true });
    const r = await scan(b, CLEAN);
    expect(r.outcome).toBe('sanitized');
    if (r.outcome === 'sanitized') await r.dispose();
    expect(requests(em, 'converted')).toHaveLength(1);
  });

  it('sanitize off: the verdict alone; infected stays infected with sanitize on', async () => {
    const em = await emulator({ sanitize: { all: true } });
    expect(await scan(await backendFor([em]), CLEAN)).toMatchObject({ outcome: 'clean' });
    expect(await scan(await backendFor([em], { sanitize: true }), EICAR_SIGNATURE)).toMatchObject({ outcome: 'infected' });
    expect(requests(em, 'converted')).toHaveLength(0);
  });

  it('sanitized file not available: backend-error, never the original as clean', async () => {
    const em = await emulator({ sanitize: { all: true }, faults: { dropRate: { converted: 1 } } });
    const r = await scan(await backendFor([em], { sanitize: true }), CLEAN);
    expect(r).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringMatching(/sanitized file not available/) });
  });

  it('a temp file that hits the file size limit (EFBIG) mid-download: an error at once, slot free, file removed', async () => {
    // A real failure of the OS, as on a full disk: the scan runs in a child limited to 512 KiB
    // files (RLIMIT_FSIZE), with SIGXFSZ ignored so the write fails instead of killing it. Such a
    // temp file never drains; before the fix the scan waited past timeout_ms with its slot held.
    const spoolDir = await mkdtemp(join(dir, 'efbig-'));
    const out = await runLimitedChild(SCAN_UNDER_FILE_LIMIT, 512, { SPOOL_DIR: spoolDir });
    const report = JSON.parse(out.trim().split('\n').at(-1)!) as { result: BackendResult | string; ms: number; status: { inFlight: number }[]; live: string[] };
    expect(report.result).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringMatching(/could not be stored.*EFBIG/) });
    expect(report.ms).toBeLessThan(1_500);
    expect(report.status).toMatchObject([{ inFlight: 0 }]);
    expect(report.live).toEqual([]);
    expect(await readdir(spoolDir)).toEqual([]);
  });
});

/**
 * The scan of the test above, run by the child: the emulator (which keeps bodies in memory) and
 * the backend with sanitize on, a 2 MiB body, 1 KiB in memory, timeout_ms 1500. Prints one JSON line.
 */
const SCAN_UNDER_FILE_LIMIT = `
const { startEmulator } = await import('./emulators/metadefender/emulator.ts');
const { createMetaDefenderBackend } = await import('./src/backends/metadefender/metadefender-backend.ts');
const { liveSpoolFiles, spooledBodyFromBuffer } = await import('./src/pipeline/spool.ts');
const core = await startEmulator({ scanDurationMs: 20, sanitize: { all: true } });
const backend = await createMetaDefenderBackend({
  name: 'md', endpoints: [core.url], apikey: '', rule: '', timeoutMs: 1500, pollInitialMs: 5, pollMaxMs: 20, hashLookup: false,
  sanitize: true, maxFileBytes: 0, spool: { memoryBytes: 1024, directory: process.env.SPOOL_DIR }, pool: { health_interval_ms: 0 },
});
const started = performance.now();
const meta = { transactionId: 'efbig', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const pending = backend.scan(spooledBodyFromBuffer(Buffer.alloc(2 * 1024 * 1024, 0x41)), meta, new AbortController().signal);
const result = await Promise.race([pending, new Promise((resolve) => setTimeout(() => resolve('still pending'), 4500))]);
const ms = performance.now() - started;
if (typeof result !== 'string' && result.dispose) await result.dispose();
console.log(JSON.stringify({ result: typeof result === 'string' ? result : { ...result, body: undefined }, ms, status: backend.status(), live: [...liveSpoolFiles()] }));
await Promise.race([backend.close(), new Promise((resolve) => setTimeout(resolve, 1000))]);
await core.close();
process.exit(0);
`;

/** Runs `script` (ESM, TypeScript imports via tsx) in a child whose files may not exceed `limitKiB`; its stdout. */
async function runLimitedChild(script: string, limitKiB: number, env: Record<string, string>): Promise<string> {
  const child = spawn('bash', ['-c', `ulimit -f ${limitKiB} && trap "" XFSZ && exec "$0" "$@"`, process.execPath, '--import', 'tsx', '--input-type=module', '--eval', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`child exited with ${code}: ${err.slice(-2000)}`);
  return out;
}

describe('hash lookup (§6)', () => {
  it('a known verdict skips the upload', async () => {
    const em = await emulator();
    const b = await backendFor([em], { hashLookup: true });
    const body = Buffer.concat([Buffer.from('x'), EICAR_SIGNATURE]);
    expect(await scan(b, body)).toMatchObject({ outcome: 'infected' });
    expect(requests(em, 'submit')).toHaveLength(1);
    expect(await scan(b, body)).toMatchObject({ outcome: 'infected', threats: ['Win.Test.EICAR_HDB-1', 'EICAR-Test-File'], sha256: sha256(body) });
    expect(await scan(b, await onDisk(body))).toMatchObject({ outcome: 'infected' });
    expect(requests(em, 'submit')).toHaveLength(1);
    expect(requests(em, 'hash').map((r) => r.id)).toEqual([sha256(body), sha256(body), sha256(body)]);
  });

  it('a hash the node knows without an upload, even for a body over max_file_bytes', async () => {
    const bad = Buffer.alloc(4096, 'b');
    const em = await emulator({ hashes: [{ sha256: sha256(bad), name: 'Known.Bad' }] });
    const b = await backendFor([em], { hashLookup: true, maxFileBytes: 1024 });
    expect(await scan(b, bad)).toMatchObject({ outcome: 'infected', threats: ['Known.Bad'] });
    expect(await scan(b, Buffer.alloc(4096, 'c'))).toMatchObject({ outcome: 'error', kind: 'too-large' });
    expect(requests(em, 'submit')).toHaveLength(0);
  });

  for (const hashNotFoundStatus of [200, 404] as const) {
    it(`not found (HTTP ${hashNotFoundStatus}): the file is uploaded`, async () => {
      const em = await emulator({ hashNotFoundStatus });
      const b = await backendFor([em], { hashLookup: true });
      expect(await scan(b, CLEAN)).toMatchObject({ outcome: 'clean' });
      expect(requests(em, 'hash')[0]!.status).toBe(hashNotFoundStatus);
      expect(requests(em, 'submit')).toHaveLength(1);
    });
  }

  it('a digest computed as the body arrived (ScanMeta.bodySha256) is looked up as it is: the body is not read to hash it', async () => {
    const bad = Buffer.alloc(4096, 'k');
    const em = await emulator({ hashes: [{ sha256: sha256(bad), name: 'Known.Bad' }] });
    const b = await backendFor([em], { hashLookup: true });
    expect(b.usesBodySha256).toBe(true);
    expect((await backendFor([em])).usesBodySha256).toBe(false);
    const body = await onDisk(bad);
    let reads = 0;
    const counted: SpooledBody = {
      size: body.size,
      memory: body.memory,
      memoryPieces: body.memoryPieces,
      path: body.path,
      createReadStream: (start, end) => (reads++, body.createReadStream(start, end)),
    };
    expect(counted.path).not.toBeNull();
    expect(await scan(b, counted, { ...META, bodySha256: sha256(bad) })).toMatchObject({ outcome: 'infected', threats: ['Known.Bad'] });
    expect(reads).toBe(0);
    expect(requests(em, 'hash').map((r) => r.id)).toEqual([sha256(bad)]);
    expect(requests(em, 'submit')).toHaveLength(0);
    // Without one the backend hashes the body itself: one read, the same lookup.
    expect(await scan(b, counted)).toMatchObject({ outcome: 'infected' });
    expect(reads).toBe(1);
    expect(requests(em, 'hash').map((r) => r.id)).toEqual([sha256(bad), sha256(bad)]);
  });

  it('a failing lookup does not fail the scan', async () => {
    const em = await emulator({ faults: { malformedJsonRate: { hash: 1 } } });
    expect(await scan(await backendFor([em], { hashLookup: true }), CLEAN)).toMatchObject({ outcome: 'clean' });
  });
});

describe('health, version, close', () => {
  it('v5: /readyz; version names Core and its engines', async () => {
    const em = await emulator();
    const b = await backendFor([em]);
    expect(b.status()).toEqual([{ endpoint: em.url, healthy: true, inFlight: 0, queued: 0 }]);
    expect(b.version).toBe('metadefender 5.10.1 engines=ClamAV/1.3.1/2024-05-01T08:00:00.000Z,EngineB/2.0.0/2024-05-01T09:00:00.000Z');
    expect(requests(em, 'health')).toHaveLength(1);
  });

  it('v4 has no /readyz: /version is the health check', async () => {
    const em = await emulator({ apiVersion: 4 });
    const b = await backendFor([em], { pool: { health_interval_ms: 50 } });
    expect(b.status()[0]!.healthy).toBe(true);
    expect(b.version).toMatch(/^metadefender 4\.21\.1 /);
    await expect.poll(() => requests(em, 'info').filter((r) => r.path === '/version').length, { timeout: 2_000 }).toBeGreaterThanOrEqual(3);
    expect(requests(em, 'health')).toHaveLength(1);
  });

  it('a server that stops answering /readyz is marked down after two checks, and up again', async () => {
    const em = await emulator();
    const b = await backendFor([em], { pool: { health_interval_ms: 40 } });
    em.configure({ ready: false });
    await expect.poll(() => b.status()[0]!.healthy, { timeout: 2_000 }).toBe(false);
    em.configure({ ready: true });
    await expect.poll(() => b.status()[0]!.healthy, { timeout: 2_000 }).toBe(true);
  });

  it('close() ends a scan in progress and stops the health checks', async () => {
    const em = await emulator({ scanDurationMs: 10_000 });
    const b = await backendFor([em], { pool: { health_interval_ms: 30 } });
    const pending = scan(b, CLEAN);
    await expect.poll(() => requests(em, 'poll').length, { timeout: 2_000 }).toBeGreaterThan(0);
    await b.close();
    expect(await pending).toMatchObject({ outcome: 'error', kind: 'backend-error' });
    const checks = requests(em, 'health').length;
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(requests(em, 'health').length).toBe(checks);
  });

  it('the caller\'s abort ends the scan', async () => {
    const em = await emulator({ scanDurationMs: 10_000 });
    const b = await backendFor([em]);
    const controller = new AbortController();
    const pending = scan(b, CLEAN, META, controller.signal);
    await expect.poll(() => requests(em, 'poll').length, { timeout: 2_000 }).toBeGreaterThan(0);
    controller.abort(new Error('client went away'));
    expect(await pending).toMatchObject({ outcome: 'error', kind: 'backend-error', message: 'scan aborted: client went away' });
  });
});

async function collect(body: SpooledBody): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body.createReadStream()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
