/**
 * spoolMultipartParts: each part of an upload spooled as its own file with its own name, the
 * EICAR file found in its part, large parts on disk within a memory budget, failures as outcomes
 * that keep what was split off, and no temp file left behind.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EICAR_SIGNATURE, EicarMatcher } from '../../src/backends/builtin/eicar.js';
import { partLabel, spoolMultipartParts, type MultipartOptions, type MultipartResult } from '../../src/pipeline/multipart/index.js';
import { BodySpool, liveSpoolFiles, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';
import { formData, type FormPart } from './multipart-fixtures.js';

const BOUNDARY = 'xYzBoundary42';
const CONTENT_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

let dir: string;
const results: MultipartResult[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-multipart-test-'));
});

afterEach(async () => {
  await Promise.all(results.splice(0).map((r) => r.dispose()));
  expect(liveSpoolFiles().size).toBe(0);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spoolParts(body: Buffer | SpooledBody, extra: Partial<MultipartOptions> = {}, contentType = CONTENT_TYPE) {
  const input = Buffer.isBuffer(body) ? spooledBodyFromBuffer(body) : body;
  const result = await spoolMultipartParts(input, contentType, { spool: { memoryBytes: 64 * 1024, directory: dir }, ...extra });
  results.push(result);
  return result;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

describe('spoolMultipartParts: an upload', () => {
  it('spools a clean text field and an EICAR file as separate parts; only the file part is infected', async () => {
    const body = formData(BOUNDARY, [
      { name: 'description', body: 'my holiday photos' },
      { name: 'upload', fileName: 'eicar.com', contentType: 'application/octet-stream', body: EICAR_SIGNATURE },
    ]);
    const result = await spoolParts(body);
    expect(result.ok).toBe(true);
    const [text, file] = result.parts;
    expect(text).toMatchObject({ index: 0, fieldName: 'description', fileName: null, mediaType: 'text/plain', isFile: false, complete: true });
    expect(file).toMatchObject({ index: 1, fieldName: 'upload', fileName: 'eicar.com', isFile: true, complete: true });
    expect(file!.sha256).toBe(sha256(EICAR_SIGNATURE));
    const found = await Promise.all(
      result.parts.map(async (part) => {
        const matcher = new EicarMatcher();
        matcher.push(await collect(part.body.createReadStream()));
        return [partLabel(part), matcher.found];
      }),
    );
    expect(found).toEqual([
      ['field description', false],
      ['eicar.com', true],
    ]);
  });

  it('treats a part without filename but with a binary media type as a file, and names every part', async () => {
    const result = await spoolParts(
      formData(BOUNDARY, [
        { name: 'blob', contentType: 'application/x-msdownload', body: Buffer.from([0x4d, 0x5a, 0x90, 0]) },
        { body: 'no disposition' },
        { name: 'doc', fileName: 'x', fileNameStar: "UTF-8''%E2%82%AC.txt", body: 'e' },
      ]),
    );
    expect(result.parts.map((p) => [p.isFile, partLabel(p)])).toEqual([
      [true, 'field blob'],
      [false, 'part 2'],
      [true, '€.txt'],
    ]);
  });

  it('spills a large part to disk with its exact bytes and SHA-256, and removes it on dispose', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 12)) & 0xff;
    const body = formData(BOUNDARY, [
      { name: 'a', body: 'small' },
      { name: 'file', fileName: 'big.bin', contentType: 'application/octet-stream', body: big },
    ]);
    const result = await spoolParts(body);
    const part = result.parts[1]!;
    expect(part.body.path).not.toBeNull();
    expect(part.body.size).toBe(big.length);
    expect((await collect(part.body.createReadStream())).equals(big)).toBe(true);
    expect(part.sha256).toBe(sha256(big));
    expect(liveSpoolFiles().size).toBe(1);
    await result.dispose();
    await result.dispose();
    expect(liveSpoolFiles().size).toBe(0);
  });

  it('reads a body that is itself on disk', async () => {
    const spool = new BodySpool({ memoryBytes: 0, directory: dir });
    spool.write(formData(BOUNDARY, [{ name: 'f', fileName: 'a.txt', body: 'A'.repeat(100_000) }]));
    const onDisk = await spool.end();
    try {
      const result = await spoolParts(onDisk);
      expect(result.ok && result.parts[0]?.body.size).toBe(100_000);
    } finally {
      await spool.dispose();
    }
  });

  it('keeps all parts together within the memory budget; the rest go to temp files', async () => {
    const parts: FormPart[] = Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, fileName: `${i}.bin`, body: Buffer.alloc(30_000, i) }));
    const result = await spoolParts(formData(BOUNDARY, parts), { limits: { memoryBudgetBytes: 100_000 } });
    const inMemory = result.parts.filter((p) => p.body.memory !== null);
    expect(inMemory.reduce((sum, p) => sum + p.body.size, 0)).toBeLessThanOrEqual(100_000);
    expect(inMemory.length).toBe(3);
    expect(result.parts.filter((p) => p.body.path !== null)).toHaveLength(7);
    expect(liveSpoolFiles().size).toBe(7);
  });

  it('replaces a nested multipart/mixed part by its files (RFC 2388 style)', async () => {
    const inner = formData('innerB', [
      { headers: ['Content-Disposition: file; filename="one.txt"'], contentType: 'text/plain', body: 'one' },
      { headers: ['Content-Disposition: file; filename="two.com"'], contentType: 'application/octet-stream', body: EICAR_SIGNATURE },
    ]);
    const body = formData(BOUNDARY, [
      { name: 'title', body: 'files' },
      { name: 'files', contentType: 'multipart/mixed; boundary=innerB', body: inner },
    ]);
    const result = await spoolParts(body);
    expect(result.ok).toBe(true);
    expect(result.parts.map((p) => [p.index, p.fieldName, p.fileName, p.body.size])).toEqual([
      [0, 'title', null, 5],
      [1, 'files', 'one.txt', 3],
      [2, 'files', 'two.com', EICAR_SIGNATURE.length],
    ]);
  });
});

describe('spoolMultipartParts: failures are outcomes', () => {
  it('keeps the parts split off before a missing final boundary, the last one marked incomplete', async () => {
    const body = formData(
      BOUNDARY,
      [
        { name: 'ok', body: 'complete' },
        { name: 'cut', fileName: 'cut.com', body: Buffer.concat([EICAR_SIGNATURE, Buffer.alloc(200_000)]) },
      ],
      { close: false },
    );
    const result = await spoolParts(body);
    expect(result).toMatchObject({ ok: false, kind: 'unsupported', reason: 'truncated' });
    expect(result.parts.map((p) => [p.fileName ?? p.fieldName, p.complete])).toEqual([
      ['ok', true],
      ['cut.com', false],
    ]);
    const cut = await collect(result.parts[1]!.body.createReadStream());
    expect(cut.subarray(0, EICAR_SIGNATURE.length).equals(EICAR_SIGNATURE)).toBe(true);
    expect(liveSpoolFiles().size).toBe(1);
  });

  it('reports a nested multipart without its close delimiter as truncated', async () => {
    const inner = formData('innerB', [{ headers: ['Content-Disposition: file; filename="a"'], body: 'a' }], { close: false });
    const body = formData(BOUNDARY, [{ name: 'files', contentType: 'multipart/mixed; boundary=innerB', body: inner }]);
    expect(await spoolParts(body)).toMatchObject({ ok: false, reason: 'truncated' });
  });

  it.each([
    ['no boundary', 'multipart/form-data', 'no-boundary', 'unsupported'],
    ['not multipart', 'application/json', 'no-boundary', 'unsupported'],
    ['no Content-Type', '', 'no-boundary', 'unsupported'],
  ])('refuses %s before reading', async (_name, contentType, reason, kind) => {
    expect(await spoolParts(Buffer.from('x'), {}, contentType)).toMatchObject({ ok: false, reason, kind, parts: [] });
  });

  it('maps malformed framing and exceeded limits to policy outcomes', async () => {
    const malformed = Buffer.from(`--${BOUNDARY}\r\n\r\nA\r\n--${BOUNDARY}junk\r\n`);
    expect(await spoolParts(malformed)).toMatchObject({ ok: false, kind: 'unsupported', reason: 'malformed' });
    const many = formData(BOUNDARY, Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, body: 'x' })));
    const tooMany = await spoolParts(many, { limits: { maxParts: 5 } });
    expect(tooMany).toMatchObject({ ok: false, kind: 'too-large', reason: 'too-many-parts' });
    expect(tooMany.parts).toHaveLength(5);
    const bigHeader = formData(BOUNDARY, [{ name: 'f', headers: [`X-Pad: ${'p'.repeat(20_000)}`], body: 'x' }]);
    expect(await spoolParts(bigHeader)).toMatchObject({ ok: false, kind: 'too-large', reason: 'part-header-too-large' });
  });

  it('counts nested parts against maxParts', async () => {
    const inner = formData('innerB', Array.from({ length: 4 }, () => ({ headers: ['Content-Disposition: file; filename="a"'], body: 'a' })));
    const body = formData(BOUNDARY, [
      { name: 'x', body: 'x' },
      { name: 'files', contentType: 'multipart/mixed; boundary=innerB', body: inner },
    ]);
    expect(await spoolParts(body, { limits: { maxParts: 4 } })).toMatchObject({ ok: false, reason: 'too-many-parts' });
  });

  it('stops on abort and leaves nothing behind after dispose', async () => {
    const controller = new AbortController();
    const body = formData(BOUNDARY, [{ name: 'f', fileName: 'big', body: Buffer.alloc(4 * 1024 * 1024) }]);
    const pending = spoolParts(body, { signal: controller.signal, spool: { memoryBytes: 0, directory: dir } });
    setImmediate(() => controller.abort());
    expect(await pending).toMatchObject({ ok: false, kind: 'timeout', reason: 'aborted' });
  });

  it('reports a part spool that cannot be written as an I/O error', async () => {
    const body = formData(BOUNDARY, [{ name: 'f', fileName: 'a', body: Buffer.alloc(100_000) }]);
    const result = await spoolParts(body, { spool: { memoryBytes: 0, directory: join(dir, 'missing') } });
    expect(result).toMatchObject({ ok: false, kind: 'backend-error', reason: 'io-error' });
  });

  it('reports a body whose spool was disposed as an I/O error', async () => {
    const spool = new BodySpool({ memoryBytes: 0, directory: dir });
    spool.write(formData(BOUNDARY, [{ name: 'f', body: 'x' }]));
    const body = await spool.end();
    await spool.dispose();
    expect(await spoolParts(body)).toMatchObject({ ok: false, reason: 'io-error' });
  });
});
