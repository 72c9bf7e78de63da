import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta } from '../../src/backends/backend.js';
import { createBuiltinBackend, type BuiltinBackendOptions } from '../../src/backends/builtin/builtin-backend.js';
import { EICAR_SIGNATURE, EicarMatcher } from '../../src/backends/builtin/eicar.js';
import { defaultThreatName, parseHashList } from '../../src/backends/builtin/hash-list.js';
import { BodySpool, liveSpoolFiles, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';

const META: ScanMeta = { transactionId: 't-1', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const MiB = 1024 * 1024;

let dir: string;
let backend: Backend;
const backends: Backend[] = [];
const spools: BodySpool[] = [];

const NAMED_BODY = Buffer.from('a body listed with a name\n');
const UNNAMED_BODY = Buffer.from('a body listed without a name\n');
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

async function newBackend(overrides: Partial<BuiltinBackendOptions> = {}): Promise<Backend> {
  const created = await createBuiltinBackend({ name: 'builtin', workers: 1, timeoutMs: 5000, eicar: true, hashLists: [], ...overrides });
  backends.push(created);
  return created;
}

/** Filler that cannot contain the signature by accident (no '$' or 'X'). */
function filler(size: number): Buffer {
  return Buffer.alloc(size, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
}

function withEicarAt(size: number, offset: number): Buffer {
  const buf = filler(size);
  EICAR_SIGNATURE.copy(buf, offset);
  return buf;
}

/** A file-backed body, written through a spool as the server would (respecting 'drain'). */
async function onDisk(data: Buffer): Promise<SpooledBody> {
  const spool = new BodySpool({ memoryBytes: 0, directory: dir });
  spools.push(spool);
  for (let at = 0; at < data.length; at += 256 * 1024) {
    if (!spool.write(data.subarray(at, at + 256 * 1024))) await new Promise((resolve) => spool.once('drain', resolve));
  }
  const body = await spool.end();
  expect(body.path).not.toBeNull();
  return body;
}

function scan(body: SpooledBody, signal = new AbortController().signal, on: Backend = backend): Promise<BackendResult> {
  return on.scan(body, META, signal);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-builtin-test-'));
  const list = join(dir, 'list.txt');
  await writeFile(
    list,
    [
      '# test hash list',
      '',
      `${sha256(NAMED_BODY).toUpperCase()}  Test.Named-Threat`,
      `${sha256(UNNAMED_BODY)}`,
      '',
    ].join('\r\n'),
  );
  backend = await newBackend({ workers: 2, hashLists: [list] });
});

afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(spools.map((s) => s.dispose()));
  expect(liveSpoolFiles().size).toBe(0);
  await rm(dir, { recursive: true, force: true });
});

describe('builtin backend: small bodies scanned inline (inlineMaxBytes)', () => {
  it('scans a memory body up to the limit on the calling thread, the same verdict as a worker', async () => {
    const inline = await newBackend({ inlineMaxBytes: 4096, hashLists: [join(dir, 'list.txt')] });
    const clean = filler(4096);
    expect(await scan(spooledBodyFromBuffer(clean), undefined, inline)).toMatchObject({ outcome: 'clean', endpoint: 'inline', sha256: sha256(clean) });
    const infected = withEicarAt(4096, 4096 - EICAR_SIGNATURE.length);
    expect(await scan(spooledBodyFromBuffer(infected), undefined, inline)).toMatchObject({
      outcome: 'infected',
      endpoint: 'inline',
      threats: ['EICAR-Test-File'],
      sha256: sha256(infected),
    });
  });

  it('computes no SHA-256 when there is no hash list to match it against', async () => {
    const unlisted = await newBackend({ inlineMaxBytes: 4096, hashLists: [] });
    const inlineResult = await scan(spooledBodyFromBuffer(withEicarAt(100, 0)), undefined, unlisted);
    expect(inlineResult).toMatchObject({ outcome: 'infected', endpoint: 'inline', threats: ['EICAR-Test-File'] });
    expect(inlineResult).not.toHaveProperty('sha256');
    const workerResult = await scan(await onDisk(withEicarAt(200 * 1024, 65536 - 30)), undefined, unlisted);
    expect(workerResult).toMatchObject({ outcome: 'infected', endpoint: 'worker-pool', threats: ['EICAR-Test-File'] });
    expect(workerResult).not.toHaveProperty('sha256');
  });

  it('scanNow answers at once for what it would scan inline, and leaves the rest to scan()', async () => {
    const inline = await newBackend({ inlineMaxBytes: 4096 });
    expect(inline.scanNow!(spooledBodyFromBuffer(withEicarAt(4096, 0)))).toMatchObject({ outcome: 'infected', endpoint: 'inline', threats: ['EICAR-Test-File'] });
    expect(inline.scanNow!(spooledBodyFromBuffer(filler(100)))).toMatchObject({ outcome: 'clean', endpoint: 'inline' });
    expect(inline.scanNow!(spooledBodyFromBuffer(filler(4097)))).toBeUndefined();
    expect(inline.scanNow!(await onDisk(filler(100)))).toBeUndefined();
    expect((await newBackend({ inlineMaxBytes: 0 })).scanNow!(spooledBodyFromBuffer(filler(10)))).toBeUndefined();
    await inline.close();
    expect(inline.scanNow!(spooledBodyFromBuffer(filler(10)))).toBeUndefined(); // scan() answers a closed backend
  });

  it('hands a body over the limit, or on disk, to the workers', async () => {
    const inline = await newBackend({ inlineMaxBytes: 4096 });
    const over = withEicarAt(4097, 100);
    expect(await scan(spooledBodyFromBuffer(over), undefined, inline)).toMatchObject({ outcome: 'infected', endpoint: 'worker-pool' });
    expect(await scan(await onDisk(filler(100)), undefined, inline)).toMatchObject({ outcome: 'clean', endpoint: 'worker-pool' });
  });

  it('checks hash lists and the EICAR switch inline too', async () => {
    expect(await scan(spooledBodyFromBuffer(NAMED_BODY), undefined, await newBackend({ inlineMaxBytes: 4096, hashLists: [join(dir, 'list.txt')] })))
      .toMatchObject({ outcome: 'infected', endpoint: 'inline', threats: ['Test.Named-Threat'] });
    expect(await scan(spooledBodyFromBuffer(withEicarAt(100, 0)), undefined, await newBackend({ inlineMaxBytes: 4096, eicar: false })))
      .toMatchObject({ outcome: 'clean', endpoint: 'inline' });
  });

  it('answers an aborted scan and a closed backend as errors, never clean', async () => {
    const inline = await newBackend({ inlineMaxBytes: 4096 });
    expect(await scan(spooledBodyFromBuffer(filler(10)), AbortSignal.abort(), inline)).toMatchObject({ outcome: 'error', kind: 'backend-error' });
    await inline.close();
    expect(await scan(spooledBodyFromBuffer(filler(10)), undefined, inline)).toMatchObject({ outcome: 'error', kind: 'backend-error' });
  });
});

describe('builtin backend: EICAR', () => {
  it('reports a clean body with its SHA-256', async () => {
    const body = filler(10_000);
    const result = await scan(spooledBodyFromBuffer(body));
    expect(result).toMatchObject({ outcome: 'clean', backend: 'builtin', sha256: sha256(body) });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('scans an empty body', async () => {
    expect(await scan(spooledBodyFromBuffer(Buffer.alloc(0)))).toMatchObject({ outcome: 'clean', sha256: sha256(Buffer.alloc(0)) });
  });

  it('finds EICAR at the start of a memory body and leaves the caller\'s bytes alone', async () => {
    const data = withEicarAt(1000, 0);
    const body = spooledBodyFromBuffer(data);
    expect(await scan(body)).toMatchObject({ outcome: 'infected', threats: ['EICAR-Test-File'], sha256: sha256(data) });
    expect(body.memory!.length).toBe(1000); // a copy was moved to the worker, not the caller's buffer
    expect(body.memory!.subarray(0, EICAR_SIGNATURE.length).equals(EICAR_SIGNATURE)).toBe(true);
  });

  it('finds EICAR in the middle of a 5 MiB file-backed body', async () => {
    const data = withEicarAt(5 * MiB, 2.5 * MiB + 13);
    expect(await scan(await onDisk(data))).toMatchObject({ outcome: 'infected', threats: ['EICAR-Test-File'], sha256: sha256(data) });
  });

  it('finds EICAR split across a 64 KiB read boundary', async () => {
    const data = withEicarAt(200 * 1024, 65536 - 30);
    expect(await scan(await onDisk(data))).toMatchObject({ outcome: 'infected', threats: ['EICAR-Test-File'] });
  });

  it('finds EICAR at the very end of a file-backed body', async () => {
    const data = withEicarAt(300 * 1024 + 5, 300 * 1024 + 5 - EICAR_SIGNATURE.length);
    expect(await scan(await onDisk(data))).toMatchObject({ outcome: 'infected', threats: ['EICAR-Test-File'] });
  });

  it('does not report a signature cut short by the end of the body', async () => {
    const data = Buffer.concat([filler(1000), EICAR_SIGNATURE.subarray(0, -1)]);
    expect(await scan(await onDisk(data))).toMatchObject({ outcome: 'clean' });
  });

  it('ignores EICAR when the option is off', async () => {
    const off = await newBackend({ eicar: false });
    expect(off.version).toContain('eicar=off');
    expect(await scan(spooledBodyFromBuffer(withEicarAt(100, 10)), undefined, off)).toMatchObject({ outcome: 'clean' });
  });

  it('matcher finds the signature at every split point and in one-byte pieces', () => {
    const data = withEicarAt(300, 100);
    for (let split = 0; split <= data.length; split++) {
      const matcher = new EicarMatcher();
      matcher.push(data.subarray(0, split));
      matcher.push(data.subarray(split));
      expect(matcher.found, `split at ${split}`).toBe(true);
    }
    const bytewise = new EicarMatcher();
    for (let i = 0; i < data.length; i++) bytewise.push(data.subarray(i, i + 1));
    expect(bytewise.found).toBe(true);
  });
});

describe('builtin backend: hash lists', () => {
  it('reports a listed hash with the list\'s threat name', async () => {
    expect(await scan(spooledBodyFromBuffer(NAMED_BODY))).toMatchObject({ outcome: 'infected', threats: ['Test.Named-Threat'] });
  });

  it('reports a listed hash without a name as Hash.SHA256.<first 12 hex>', async () => {
    const hash = sha256(UNNAMED_BODY);
    expect(await scan(await onDisk(UNNAMED_BODY))).toMatchObject({
      outcome: 'infected',
      threats: [`Hash.SHA256.${hash.slice(0, 12)}`],
    });
  });

  it('parses names after whitespace or a colon, comments, blank lines and mixed case', () => {
    const a = 'A'.repeat(64);
    const b = 'b'.repeat(64);
    const c = 'c'.repeat(64);
    const d = 'd'.repeat(64);
    const map = parseHashList(`\uFEFF# comment\n\n  ${a}\tTrojan.A \n${b}:Worm.B\n${c} : Spaced Name\n${d}\n   # indented comment\n`, 'x.txt');
    expect([...map]).toEqual([
      ['a'.repeat(64), 'Trojan.A'],
      [b, 'Worm.B'],
      [c, 'Spaced Name'],
      [d, defaultThreatName(d)],
    ]);
    expect(defaultThreatName(d)).toBe(`Hash.SHA256.${'d'.repeat(12)}`);
  });

  it('names file:line for a malformed line', () => {
    const good = 'e'.repeat(64);
    for (const bad of ['e'.repeat(63), 'e'.repeat(65), `${'g'.repeat(64)} Name`, `${good}-Name`, 'not a hash']) {
      expect(() => parseHashList(`# header\n${good}\n${bad}\n`, 'lists/bad.txt'), bad).toThrow(
        expect.objectContaining({ code: 'ICAP_ERR_HASH_LIST_INVALID', file: 'lists/bad.txt', line: 3, message: expect.stringMatching(/^lists\/bad\.txt:3: /) }),
      );
    }
  });

  it('fails to create a backend from a malformed or missing list, naming the file', async () => {
    const bad = join(dir, 'bad.txt');
    await writeFile(bad, `${'f'.repeat(64)}\nzzz\n`);
    await expect(newBackend({ hashLists: [bad] })).rejects.toThrow(`${bad}:2: `);
    await expect(newBackend({ hashLists: [join(dir, 'missing.txt')] })).rejects.toMatchObject({ code: 'ICAP_ERR_HASH_LIST_INVALID' });
  });

  it('version names the engine, EICAR and hash data, and changes when a list changes', async () => {
    expect(backend.version).toMatch(/^builtin\/0\.1\.0 eicar=on hashes=2:[0-9a-f]{16}$/);
    const list = join(dir, 'changing.txt');
    await writeFile(list, `${'1'.repeat(64)} One\n`);
    const before = (await newBackend({ hashLists: [list] })).version;
    await writeFile(list, `# reordered, commented: same data\n\n${'1'.repeat(64)}   One\n`);
    const same = (await newBackend({ hashLists: [list] })).version;
    await writeFile(list, `${'1'.repeat(64)} One\n${'2'.repeat(64)}\n`);
    const added = (await newBackend({ hashLists: [list] })).version;
    await writeFile(list, `${'1'.repeat(64)} Renamed\n${'2'.repeat(64)}\n`);
    const renamed = (await newBackend({ hashLists: [list] })).version;
    expect(same).toBe(before);
    expect(new Set([before, added, renamed]).size).toBe(3);
    expect(added).toMatch(/hashes=2:/);
  });
});

describe('builtin backend: stopping a scan', () => {
  let slow: Backend;
  let big: SpooledBody;

  beforeAll(async () => {
    slow = await newBackend({ timeoutMs: 5000, maxQueue: 0 });
    big = await onDisk(filler(5 * MiB));
  });

  it('gives up when the caller aborts', async () => {
    const controller = new AbortController();
    const pending = scan(big, controller.signal, slow);
    controller.abort(new Error('client disconnected'));
    expect(await pending).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringContaining('client disconnected') });
    expect(await scan(big, AbortSignal.abort(), slow)).toMatchObject({ outcome: 'error', kind: 'backend-error' });
  });

  it('times out with kind timeout', async () => {
    const hasty = await newBackend({ timeoutMs: 1 });
    expect(await scan(big, undefined, hasty)).toMatchObject({ outcome: 'error', kind: 'timeout' });
  });

  it('answers overloaded when the queue is full', async () => {
    const results = await Promise.all([scan(big, undefined, slow), scan(big, undefined, slow)]);
    expect(results.map((r) => r.outcome === 'error' ? r.kind : r.outcome).sort()).toEqual(['clean', 'overloaded']);
  });

  it('answers backend-error, never rejects, once closed', async () => {
    const closed = await newBackend();
    await closed.close();
    expect(await scan(spooledBodyFromBuffer(filler(10)), undefined, closed)).toMatchObject({ outcome: 'error', kind: 'backend-error' });
  });

  it('answers backend-error when the body file is gone', async () => {
    const spool = new BodySpool({ memoryBytes: 0, directory: dir });
    spool.write(filler(100));
    const body = await spool.end();
    await spool.dispose();
    const vanished: SpooledBody = { size: body.size, memory: null, memoryPieces: null, path: body.path, createReadStream: () => body.createReadStream() };
    expect(await scan(vanished)).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringContaining('ENOENT') });
  });
});
