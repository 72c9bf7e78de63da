/**
 * MetaDefender Core batch scanning of multipart parts (issue 5, specs/metadefender-core-api.md §7)
 * against the emulator: one batch per upload on one server, per-part verdicts in order, the
 * signed report verified, and every failure an error for every part — never clean.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import type { Backend, BackendResult, PartsScan, ScanMeta, ScanPart } from '../../src/backends/backend.js';
import { EICAR_SIGNATURE } from '../../src/backends/builtin/eicar.js';
import { checkBatchCertificate } from '../../src/backends/metadefender/batch-certificate.js';
import { fileResultDocument, readBatchPage } from '../../src/backends/metadefender/batch-status.js';
import { createMetaDefenderBackend, type MetaDefenderBackendOptions } from '../../src/backends/metadefender/metadefender-backend.js';
import { isFinished, mapResult } from '../../src/backends/metadefender/result-map.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { startEmulator, type EmulatorHandle, type RequestLogEntry } from '../../emulators/metadefender/emulator.js';

const META: ScanMeta = { transactionId: 'batch-tx-1', method: 'REQMOD', clientAddress: '127.0.0.1', url: 'http://upload.example/form' };

let emulators: EmulatorHandle[] = [];
let backends: Backend[] = [];

afterEach(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(emulators.map((e) => e.close()));
  backends = [];
  emulators = [];
});

async function emulator(options: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  const em = await startEmulator({ scanDurationMs: 0, ...options });
  emulators.push(em);
  return em;
}

async function backendFor(ems: readonly EmulatorHandle[], overrides: Partial<MetaDefenderBackendOptions> = {}): Promise<Backend> {
  const b = await createMetaDefenderBackend({
    name: 'md',
    endpoints: ems.map((e) => e.url),
    apikey: '',
    rule: '',
    timeoutMs: 5000,
    pollInitialMs: 5,
    pollMaxMs: 20,
    hashLookup: false,
    sanitize: false,
    maxFileBytes: 0,
    spool: { memoryBytes: 1 << 20, directory: '/tmp' },
    pool: { health_interval_ms: 0 },
    ...overrides,
  });
  backends.push(b);
  return b;
}

function part(body: Buffer | string, fileName: string | undefined, label = fileName ?? 'field comment'): ScanPart {
  return { body: spooledBodyFromBuffer(Buffer.from(body)), ...(fileName !== undefined && { fileName }), label };
}

/** Bytes in every value 0–255, no EICAR: a "binary" part. */
function binary(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** Clean text, EICAR inside binary, clean binary with a non-ASCII name. */
function threeParts(): ScanPart[] {
  return [
    part('hello, clean text\n', 'notes.txt'),
    part(Buffer.concat([binary(300, 7), EICAR_SIGNATURE, binary(200, 9)]), 'payload.bin'),
    part(binary(4096, 3), 'café.bin'),
  ];
}

function scanParts(b: Backend, parts: readonly ScanPart[], signal = new AbortController().signal): Promise<PartsScan> {
  return b.scanParts!(parts, META, signal);
}

function outcomes(results: readonly BackendResult[]): string[] {
  return results.map((r) => r.outcome);
}

/** Requests of the emulator that name `batchId`: batch calls on it and uploads into it. */
function requestsFor(em: EmulatorHandle, batchId: string): RequestLogEntry[] {
  return em.stats.requests.filter((r) => r.id === batchId || r.headers['batch'] === batchId);
}

async function until(what: string, condition: () => boolean, limitMs = 3000): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited >= limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('scanParts against the emulator', () => {
  it('three parts → clean, infected, clean, each uploaded into one batch with its own file name; signature verified', async () => {
    const em = await emulator();
    const b = await backendFor([em]);
    const scan = await scanParts(b, threeParts());

    expect(outcomes(scan.results)).toEqual(['clean', 'infected', 'clean']);
    const infected = scan.results[1]!;
    // Engine names from the file's own result, not just the batch entry's "Infected".
    expect(infected.outcome === 'infected' && infected.threats).toEqual(expect.arrayContaining(['EICAR-Test-File', 'Win.Test.EICAR_HDB-1']));
    expect(scan.results.every((r) => r.endpoint === em.url && r.backend === 'md')).toBe(true);
    expect(scan.batch).toMatchObject({ endpoint: em.url, signed: true, verified: true });
    expect(scan.batch!.detail).toBeUndefined();

    const batchId = scan.batch!.id;
    const uploads = em.stats.requests.filter((r) => r.route === 'submit');
    expect(uploads.map((r) => r.headers['batch'])).toEqual([batchId, batchId, batchId]);
    expect(uploads.map((r) => decodeURIComponent(r.headers['filename'] ?? ''))).toEqual(['notes.txt', 'payload.bin', 'café.bin']);
    expect(uploads.map((r) => Number(r.headers['content-length']))).toEqual([18, 568, 4096]);
    expect(uploads.map((r) => JSON.parse(r.headers['metadata']!).part)).toEqual([1, 2, 3]);
    expect(em.stats.chunkedRejected).toBe(0);
    // The flow of §7, in order.
    const calls = em.stats.requests.filter((r) => r.route !== 'health' && r.route !== 'info').map((r) => `${r.method} ${r.path.replace(batchId, '{id}')}`);
    expect(calls[0]).toBe('POST /file/batch');
    expect(calls.indexOf('POST /file/batch/{id}/close')).toBeGreaterThan(calls.lastIndexOf('POST /file'));
    expect(calls.at(-1)).toBe('GET /file/batch/{id}/certificate');
    expect(calls).toContain('GET /file/batch/{id}');
    expect(em.stats.requests.every((r) => r.status === 200)).toBe(true);
  });

  it('a certificate whose content was changed after signing is recorded as not verified; verdicts stand', async () => {
    const em = await emulator({ faults: { tamperedCertificateRate: 1 } });
    const b = await backendFor([em]);
    const scan = await scanParts(b, threeParts());
    expect(outcomes(scan.results)).toEqual(['clean', 'infected', 'clean']);
    expect(scan.batch).toMatchObject({ signed: true, verified: false, detail: expect.stringContaining('does not match') });
  });

  it('a server that refuses to close while files are unfinished: polled until finished, then closed again', async () => {
    const em = await emulator({ batchCloseRequiresFinished: true, scanDurationMs: 150 });
    const b = await backendFor([em]);
    const scan = await scanParts(b, threeParts());
    expect(outcomes(scan.results)).toEqual(['clean', 'infected', 'clean']);
    expect(scan.batch).toMatchObject({ signed: true, verified: true });
    const closes = em.stats.requests.filter((r) => r.path.endsWith('/close')).map((r) => r.status);
    expect(closes).toEqual([400, 200]);
    // The second close came after a status poll that saw every file finished.
    const calls = em.stats.requests.map((r) => r.path);
    expect(calls.lastIndexOf(`/file/batch/${scan.batch!.id}`)).toBeLessThan(calls.lastIndexOf(`/file/batch/${scan.batch!.id}/close`));
  });

  it('post-processing (§3): a part whose AV part is done and clean waits for the policy verdict', async () => {
    const em = await emulator({
      postProcessing: { durationMs: 150 },
      resultRules: [{ filenameSuffix: '.dlp', code: 20, result: 'Blocked', blockedReason: 'Sensitive Data Found' }],
    });
    const b = await backendFor([em]);
    const scan = await scanParts(b, [part('hello\n', 'notes.txt'), part('card 4111 1111 1111 1111\n', 'payroll.dlp')]);
    expect(outcomes(scan.results)).toEqual(['clean', 'infected']);
    expect(scan.results[1]).toMatchObject({ threats: ['Sensitive Data Found'] });
    // Status polls came while the entries read 100 % at the top level and "Processing" inside.
    expect(em.stats.requests.filter((r) => r.route === 'batch' && r.method === 'GET' && !r.path.endsWith('/certificate')).length).toBeGreaterThan(2);
  });

  it('a server that dies mid-batch: every part an error, none clean', async () => {
    const em = await emulator({ scanDurationMs: 30_000 });
    const b = await backendFor([em], { timeoutMs: 10_000 });
    const pending = scanParts(b, threeParts());
    await until('a status poll', () => em.stats.requests.some((r) => r.route === 'batch' && r.method === 'GET'));
    await em.close();
    const scan = await pending;
    expect(scan.results).toHaveLength(3);
    for (const r of scan.results) expect(r).toMatchObject({ outcome: 'error', kind: 'unreachable' });
    expect(scan.batch).toMatchObject({ signed: false, verified: null, detail: expect.stringContaining('batch failed') });
  });

  it('with two servers, every call of a batch goes to the server that opened it', async () => {
    const a = await emulator();
    const c = await emulator();
    const b = await backendFor([a, c], { pool: { health_interval_ms: 0, balance: 'round-robin' } });
    const first = await scanParts(b, threeParts());
    const second = await scanParts(b, threeParts());
    for (const scan of [first, second]) expect(outcomes(scan.results)).toEqual(['clean', 'infected', 'clean']);
    // Round robin put one batch on each.
    expect(new Set([first.batch!.endpoint, second.batch!.endpoint])).toEqual(new Set([a.url, c.url]));
    for (const scan of [first, second]) {
      const owner = scan.batch!.endpoint === a.url ? a : c;
      const other = owner === a ? c : a;
      expect(requestsFor(owner, scan.batch!.id).length).toBeGreaterThanOrEqual(6); // 3 uploads, close, status, certificate
      expect(requestsFor(other, scan.batch!.id)).toEqual([]);
      expect(scan.results.every((r) => r.endpoint === owner.url)).toBe(true);
    }
    for (const em of [a, c]) {
      // Per-file lookups (engine names) only for ids this node issued; nothing was unknown anywhere.
      for (const r of em.stats.requests.filter((q) => q.route === 'poll')) expect(em.stats.acceptedIds).toContain(r.id);
      expect(em.stats.requests.filter((r) => r.status !== 200)).toEqual([]);
    }
  });

  it('an open refused as too busy goes to the other server; nothing was uploaded to the first', async () => {
    const busy = await emulator({ faults: { status503Rate: { batch: 1 } } });
    const ok = await emulator();
    const b = await backendFor([busy, ok]);
    const scan = await scanParts(b, threeParts());
    expect(outcomes(scan.results)).toEqual(['clean', 'infected', 'clean']);
    expect(scan.batch).toMatchObject({ endpoint: ok.url, verified: true });
    expect(busy.stats.requests.filter((r) => r.route === 'batch').map((r) => r.status)).toEqual([503]);
    expect(busy.stats.requests.filter((r) => r.route === 'submit')).toEqual([]);
  });

  it('timeout_ms bounds the whole batch: every part times out and the batch is cancelled on its server', async () => {
    const em = await emulator({ scanDurationMs: 30_000 });
    const b = await backendFor([em], { timeoutMs: 300 });
    const scan = await scanParts(b, threeParts());
    for (const r of scan.results) expect(r).toMatchObject({ outcome: 'error', kind: 'timeout' });
    const batchId = scan.batch!.id;
    await until('the cancel', () => em.stats.requests.some((r) => r.path === `/file/batch/${batchId}/cancel` && r.status === 200));
    const status = (await (await fetch(`${em.url}/file/batch/${batchId}`)).json()) as { is_closed: boolean; scan_results: { scan_all_result_i: number } };
    expect(status.is_closed).toBe(true);
    expect(status.scan_results.scan_all_result_i).toBe(19);
  });

  it('an upload refused mid-batch: every part an error, the refused one named; the batch is cancelled', async () => {
    // The emulator answers 500 for a body over maxBodyBytes: the third part (4096 bytes) is refused.
    const em = await emulator({ maxBodyBytes: 1000 });
    const b = await backendFor([em]);
    const scan = await scanParts(b, threeParts());
    expect(scan.results.map((r) => r.outcome === 'error' && r.kind)).toEqual(['backend-error', 'backend-error', 'backend-error']);
    expect(scan.results[2]!.outcome === 'error' && scan.results[2]!.message).toContain('part café.bin');
    expect(scan.results[0]!.outcome === 'error' && scan.results[0]!.message).toContain('abandoned');
    await until('the cancel', () => em.stats.requests.some((r) => r.path.endsWith('/cancel')));
  });

  it('empty parts are clean and oversized ones too-large without an upload; the rest still go in a batch', async () => {
    const em = await emulator();
    const b = await backendFor([em], { maxFileBytes: 1000 });
    const scan = await scanParts(b, [part('', 'empty.txt'), part(binary(2000, 1), 'big.bin'), part('small', undefined, 'field note')]);
    expect(outcomes(scan.results)).toEqual(['clean', 'error', 'clean']);
    expect(scan.results[1]).toMatchObject({ kind: 'too-large' });
    const uploads = em.stats.requests.filter((r) => r.route === 'submit');
    expect(uploads).toHaveLength(1);
    // A part without a file name is sent without one.
    expect(uploads[0]!.headers['filename']).toBeUndefined();
    expect(scan.batch).toMatchObject({ verified: true });
  });

  it('more parts than a status page holds (50): every page is read, verdicts stay in order', async () => {
    const em = await emulator();
    const b = await backendFor([em]);
    const parts = Array.from({ length: 57 }, (_, i) => (i % 19 === 5 ? part(EICAR_SIGNATURE, `f${i}.com`) : part(`file ${i}`, `f${i}.txt`)));
    const scan = await scanParts(b, parts);
    expect(outcomes(scan.results)).toEqual(parts.map((_, i) => (i % 19 === 5 ? 'infected' : 'clean')));
    const pages = em.stats.requests.filter((r) => r.route === 'batch' && r.method === 'GET' && r.path === `/file/batch/${scan.batch!.id}`);
    expect(pages.length).toBeGreaterThanOrEqual(2);
  });

  it('no server reachable: every part an error, nothing pretends to be clean', async () => {
    const em = await emulator();
    await em.close(); // its URL now refuses connections
    const b = await backendFor([em], { timeoutMs: 2000 });
    const scan = await scanParts(b, threeParts());
    for (const r of scan.results) expect(r).toMatchObject({ outcome: 'error', kind: 'unreachable' });
    expect(scan.batch).toBeUndefined();
  });
});

/** Status polls (`GET /file/batch/{id}`, any page) the emulator got. */
function statusPolls(em: EmulatorHandle): RequestLogEntry[] {
  return em.stats.requests.filter((r) => r.route === 'batch' && r.method === 'GET' && r.id !== undefined && r.path === `/file/batch/${r.id}`);
}

function opens(em: EmulatorHandle): RequestLogEntry[] {
  return em.stats.requests.filter((r) => r.route === 'batch' && r.method === 'POST' && r.path === '/file/batch');
}

function cancels(em: EmulatorHandle): RequestLogEntry[] {
  return em.stats.requests.filter((r) => r.path.endsWith('/cancel'));
}

describe('Retry-After on a 429 or 503 batch status poll: a floor for the next poll, capped by the deadline (as for a single job)', () => {
  for (const [key, status] of [
    ['status429Rate', 429],
    ['status503Rate', 503],
  ] as const) {
    it(`${status} with Retry-After: 1 on the status: the next status poll waits at least 1 s instead of the 10–20 ms back-off`, async () => {
      const em = await emulator({ scanDurationMs: 60_000 });
      const b = await backendFor([em], { timeoutMs: 5_000 });
      const pending = scanParts(b, threeParts());
      // Open, uploads and close answered normally; from the first status poll on, the batch calls are busy.
      await until('a status poll', () => statusPolls(em).length > 0);
      em.configure({ faults: { [key]: { batch: 1 }, retryAfterSeconds: 1 } });
      const scan = await pending;
      // Still three busy answers before giving up, as without the header.
      for (const r of scan.results) expect(r).toMatchObject({ outcome: 'error', kind: 'overloaded', message: expect.stringContaining(`failed 3 times: MetaDefender is too busy (HTTP ${status}`) });
      const at = statusPolls(em).filter((r) => r.status === status).map((r) => r.at);
      expect(at).toHaveLength(3);
      // Timers may fire a little early against another clock: 950 ms, not 1000.
      expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
      expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(950);
    });
  }

  it('a Retry-After past the deadline (or past what a timer holds): the next status poll waits until the deadline, not longer, not 1 ms', async () => {
    const em = await emulator({ scanDurationMs: 60_000 });
    const b = await backendFor([em], { timeoutMs: 600 });
    const started = performance.now();
    const pending = scanParts(b, threeParts());
    await until('a status poll', () => statusPolls(em).length > 0);
    // 10^7 s is 10^10 ms, over setTimeout's 2^31-1: uncapped, Node would fire it after 1 ms.
    em.configure({ faults: { status429Rate: { batch: 1 }, retryAfterSeconds: 10_000_000 } });
    const scan = await pending;
    const ms = performance.now() - started;
    for (const r of scan.results) expect(r).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(ms).toBeGreaterThanOrEqual(550);
    expect(ms).toBeLessThan(1_100);
    expect(statusPolls(em).filter((r) => r.status === 429)).toHaveLength(1);
  });
});

describe('a batch its server no longer knows (§7 404; §9: Core restarted, or another node answered)', () => {
  it('is opened and uploaded once more on the same server: the real verdicts, nothing asked of the lost batch afterwards', async () => {
    const em = await emulator({ scanDurationMs: 150 });
    const b = await backendFor([em]);
    const pending = scanParts(b, threeParts());
    await until('a status poll', () => statusPolls(em).length > 0);
    em.forgetAll();
    const scan = await pending;
    expect(outcomes(scan.results)).toEqual(['clean', 'infected', 'clean']);
    expect(scan.batch).toMatchObject({ endpoint: em.url, signed: true, verified: true });
    const lost = statusPolls(em)[0]!.id!;
    expect(scan.batch!.id).not.toBe(lost);
    expect(opens(em)).toHaveLength(2);
    expect(em.stats.requests.filter((r) => r.route === 'submit')).toHaveLength(6);
    const lostAt = em.stats.requests.findIndex((r) => r.id === lost && r.status === 404);
    expect(lostAt).toBeGreaterThan(-1);
    expect(em.stats.requests.slice(lostAt + 1).filter((r) => r.id === lost || r.headers['batch'] === lost)).toEqual([]);
    // Nothing runs on the server under the lost id: no cancel for it.
    expect(cancels(em)).toEqual([]);
  });

  it('unknown again after the second upload: every part a backend error (never clean), two batches only, no cancel', async () => {
    const em = await emulator({ scanDurationMs: 60_000 });
    const b = await backendFor([em]);
    const pending = scanParts(b, threeParts());
    await until('a status poll', () => statusPolls(em).length > 0);
    const first = statusPolls(em)[0]!.id;
    em.forgetAll();
    await until('the second batch polled', () => statusPolls(em).some((r) => r.id !== first && r.status === 200));
    em.forgetAll();
    const scan = await pending;
    for (const r of scan.results) {
      expect(r).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringMatching(/no longer knows the batch \(HTTP 404\); again, after every part was uploaded once more/) });
    }
    expect(opens(em)).toHaveLength(2);
    expect(em.stats.requests.filter((r) => r.route === 'submit')).toHaveLength(6);
    expect(cancels(em)).toEqual([]);
    expect(b.status()).toMatchObject([{ inFlight: 0 }]);
  });
});

describe('close() while a batch is polled', () => {
  it('cancels the batch on its server before the connections go, once; every part an error', async () => {
    const em = await emulator({ scanDurationMs: 60_000 });
    const b = await backendFor([em]);
    backends = backends.filter((x) => x !== b);
    const pending = scanParts(b, threeParts());
    await until('a status poll', () => statusPolls(em).length > 0);
    const batchId = statusPolls(em)[0]!.id!;
    await b.close();
    // close() waited for it.
    expect(cancels(em).map((r) => [r.path, r.status])).toEqual([[`/file/batch/${batchId}/cancel`, 200]]);
    const scan = await pending;
    for (const r of scan.results) expect(r).toMatchObject({ outcome: 'error', kind: 'backend-error' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(cancels(em)).toHaveLength(1);
    const status = (await (await fetch(`${em.url}/file/batch/${batchId}`)).json()) as { is_closed: boolean; scan_results: { scan_all_result_i: number } };
    expect(status).toMatchObject({ is_closed: true, scan_results: { scan_all_result_i: 19 } });
  });
});

describe('batch documents (pure)', () => {
  it('a §7 status entry maps like a §3 result', () => {
    const page = readBatchPage({
      batch_id: 'b1',
      batch_files: {
        batch_count: 2,
        first_index: 0,
        page_size: 50,
        files_in_batch: [
          { data_id: 'aa', progress_percentage: 100, scan_all_result_i: 1, scan_all_result_a: 'Infected', process_info: { result: 'Blocked', blocked_reason: 'Infected', progress_percentage: 100 } },
          { data_id: 'bb', progress_percentage: 40, scan_all_result_i: 255, process_info: { result: 'Processing', progress_percentage: 40 } },
          { no_id: true },
        ],
      },
    })!;
    expect(page.count).toBe(2);
    expect(page.unnamed).toBe(1);
    const [aa, bb] = page.files.map((f) => fileResultDocument(f.dataId, f.entry));
    expect(isFinished(aa)).toBe(true);
    expect(mapResult(aa)).toMatchObject({ verdict: 'infected' });
    expect(isFinished(bb)).toBe(false);
    // Without process_info the top-level percentage decides (old servers, §3)...
    expect(isFinished(fileResultDocument('cc', { progress_percentage: 100, scan_all_result_i: 0 }))).toBe(true);
    // ...but not when process_info is there and still running: the top level is the AV part only.
    const policyRunning = { progress_percentage: 100, scan_all_result_i: 0, process_info: { result: 'Processing' } };
    expect(isFinished(fileResultDocument('dd', policyRunning))).toBe(false);
    expect(isFinished(fileResultDocument('ee', { ...policyRunning, process_info: { result: 'Processing', progress_percentage: 90 } }))).toBe(false);
    expect(readBatchPage({ err: 'nope' })).toBeUndefined();
    expect(readBatchPage({ batch_files: { files_in_batch: 'x' } })).toBeUndefined();
  });

  it('signed report: DER or P1363 signatures verify; a changed report, another batch or garbage do not', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const status = { batch_id: 'b1', is_closed: true, user_data: 'x', batch_files: { batch_count: 1, files_in_batch: [{ data_id: 'aa' }] } };
    const signed = (doc: object, dsaEncoding: 'der' | 'ieee-p1363' = 'der') =>
      toYaml({ ...doc, signature: sign('sha256', Buffer.from(JSON.stringify(doc)), { key: privateKey, dsaEncoding }).toString('hex'), certificate: pem });

    expect(checkBatchCertificate(signed(status), 'b1')).toEqual({ signed: true, verified: true });
    expect(checkBatchCertificate(signed(status, 'ieee-p1363'), 'b1')).toEqual({ signed: true, verified: true });
    expect(checkBatchCertificate(signed(status).replace('user_data: x', 'user_data: y'), 'b1')).toMatchObject({ signed: true, verified: false });
    expect(checkBatchCertificate(signed(status), 'b2')).toMatchObject({ signed: true, verified: false, detail: expect.stringContaining('batch b1') });
    expect(checkBatchCertificate(toYaml(status), 'b1')).toMatchObject({ signed: false, verified: null });
    expect(checkBatchCertificate('{ not: [yaml', 'b1')).toMatchObject({ signed: false, verified: null });
    expect(checkBatchCertificate(toYaml({ ...status, signature: 'zz', certificate: pem }), 'b1')).toMatchObject({ signed: true, verified: false });
    expect(checkBatchCertificate(toYaml({ ...status, signature: 'abcd', certificate: 'not a pem' }), 'b1')).toMatchObject({ signed: true, verified: false });
  });
});
