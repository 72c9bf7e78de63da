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

  it('returns a nested multipart/mixed part whole, then its files (RFC 2388 style)', async () => {
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
    // Whole, as busboy/multer and PHP store it (they do not split nested multipart), and split.
    expect(result.parts.map((p) => [p.index, p.fieldName, p.fileName, p.mediaType, p.body.size])).toEqual([
      [0, 'title', null, 'text/plain', 5],
      [1, 'files', null, 'multipart/mixed', inner.length],
      [2, 'files', 'one.txt', 'text/plain', 3],
      [3, 'files', 'two.com', 'application/octet-stream', EICAR_SIGNATURE.length],
    ]);
    expect((await collect(result.parts[1]!.body.createReadStream())).equals(inner)).toBe(true);
    expect(result.parts[1]!.sha256).toBe(sha256(inner));
  });

  it('keeps EICAR in the inner preamble of a nested multipart: the part whole holds it', async () => {
    const inner = Buffer.concat([EICAR_SIGNATURE, Buffer.from('\r\n--innerB--')]);
    const body = formData(BOUNDARY, [
      { name: 'a', fileName: 'a.txt', body: 'clean' },
      { name: 'report', fileName: 'report.bin', contentType: 'multipart/mixed; boundary=innerB', body: inner },
    ]);
    const result = await spoolParts(body);
    expect(result.ok).toBe(true);
    // The inner multipart has no part at all; only the part whole carries the bytes.
    expect(result.parts.map((p) => [partLabel(p), p.complete])).toEqual([
      ['a.txt', true],
      ['report.bin', true],
    ]);
    expect((await collect(result.parts[1]!.body.createReadStream())).equals(inner)).toBe(true);
    expect(result.ok && result.outside).toEqual([]);
  });

  it('returns a preamble and an epilogue that are not just whitespace, to be scanned', async () => {
    const body = formData(BOUNDARY, [{ name: 'a', fileName: 'a.txt', body: 'clean' }], {
      preamble: `\r\n  ${EICAR_SIGNATURE.toString('latin1')} preamble`,
      epilogue: `\t${EICAR_SIGNATURE.toString('latin1')}\r\n`,
    });
    const result = await spoolParts(body);
    expect(result.ok).toBe(true);
    expect(result.parts.map((p) => partLabel(p))).toEqual(['a.txt']);
    const outside = result.ok ? result.outside : [];
    // From the first byte that is not whitespace; the CRLF before the first delimiter is the delimiter's.
    const expected = [
      ['preamble', `${EICAR_SIGNATURE.toString('latin1')} preamble`],
      ['epilogue', `${EICAR_SIGNATURE.toString('latin1')}\r\n`],
    ];
    expect(await Promise.all(outside.map(async (o) => [o.region, (await collect(o.body.createReadStream())).toString('latin1')]))).toEqual(expected);
    expect(outside.map((o) => o.sha256)).toEqual(expected.map(([, text]) => sha256(Buffer.from(text!, 'latin1'))));
  });

  it('returns no outside piece for a preamble or epilogue of whitespace only, and spools nothing for them', async () => {
    const parts: FormPart[] = [{ name: 'f', fileName: 'big.bin', body: Buffer.alloc(100_000, 1) }];
    const browser = await spoolParts(formData(BOUNDARY, parts)); // `--boundary--\r\n`, as browsers end it
    expect(browser.ok && browser.outside).toEqual([]);
    const before = liveSpoolFiles().size;
    const blank = await spoolParts(formData(BOUNDARY, parts, { preamble: '\r\n \t\r\n', epilogue: '\r\n\r\n  \t' }), { spool: { memoryBytes: 0, directory: dir } });
    expect(blank.ok && blank.outside).toEqual([]);
    expect(liveSpoolFiles().size - before).toBe(1); // the part's file only
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

  it('reports a nested multipart without its close delimiter as truncated, the part whole kept as incomplete', async () => {
    const inner = formData('innerB', [{ headers: ['Content-Disposition: file; filename="a"'], body: 'a' }], { close: false });
    const body = formData(BOUNDARY, [{ name: 'files', contentType: 'multipart/mixed; boundary=innerB', body: inner }]);
    const result = await spoolParts(body);
    expect(result).toMatchObject({ ok: false, reason: 'truncated' });
    expect(result.parts.map((p) => [p.index, p.mediaType, p.complete])).toEqual([
      [0, 'multipart/mixed', false],
      [1, 'text/plain', false],
    ]);
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

  it('splits a 1000-field form under the default limits, as PHP and Django accept it', async () => {
    const fields = formData(BOUNDARY, Array.from({ length: 1000 }, (_, i) => ({ name: `field${i}`, body: String(i) })));
    const result = await spoolParts(fields);
    expect(result.ok && result.parts.length).toBe(1000);
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
