/**
 * Parts sent with Content-Transfer-Encoding base64 or quoted-printable (RFC 2045 §6.8, §6.7):
 * returned as sent and decoded, the decoded form a part of its own with its own SHA-256, decoded
 * however the body is cut into reads, leniently, and within the same memory budget.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EICAR_SIGNATURE, EicarMatcher } from '../../src/backends/builtin/eicar.js';
import { partLabel, spoolMultipartParts, type MultipartOptions, type MultipartPart, type MultipartResult } from '../../src/pipeline/multipart/index.js';
import { liveSpoolFiles, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';
import { base64Lines, formData, type FormPart } from './multipart-fixtures.js';

const BOUNDARY = 'cteBoundary17';
const CONTENT_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;
/** Bytes of every value, EICAR in the middle: what a base64 part carries. */
const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 700 }, (_, i) => (i * 7) & 0xff)), EICAR_SIGNATURE, Buffer.alloc(300, 0xfe)]);

let dir: string;
const results: MultipartResult[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-cte-test-'));
});

afterEach(async () => {
  await Promise.all(results.splice(0).map((r) => r.dispose()));
  expect(liveSpoolFiles().size).toBe(0);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spoolParts(body: Buffer | SpooledBody, extra: Partial<MultipartOptions> = {}) {
  const input = Buffer.isBuffer(body) ? spooledBodyFromBuffer(body) : body;
  const result = await spoolMultipartParts(input, CONTENT_TYPE, { spool: { memoryBytes: 64 * 1024, directory: dir }, ...extra });
  results.push(result);
  return result;
}

/** A body whose reads come in exactly these pieces. */
function readInPieces(pieces: readonly Buffer[]): SpooledBody {
  return {
    size: pieces.reduce((n, p) => n + p.length, 0),
    memory: null,
    memoryPieces: null,
    path: null,
    createReadStream: () => Readable.from(pieces),
  };
}

async function bytesOf(part: MultipartPart | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of part!.body.createReadStream()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

const encoded = (encoding: string, body: string, name = 'upload', fileName = 'payload.bin'): FormPart => ({
  name,
  fileName,
  contentType: 'application/octet-stream',
  headers: [`Content-Transfer-Encoding: ${encoding}`],
  body,
});

describe('a base64 part', () => {
  it('with lines of 76: the part as sent, then its decoded form with its own SHA-256; EICAR found only in the decoded one', async () => {
    const text = base64Lines(BINARY);
    expect(text.split('\r\n')[0]).toHaveLength(76);
    const result = await spoolParts(formData(BOUNDARY, [{ name: 'note', body: 'hi' }, encoded('base64', text)]));
    expect(result.ok).toBe(true);
    expect(result.parts.map((p) => [p.index, partLabel(p), p.decodedFrom, p.mediaType, p.isFile, p.complete])).toEqual([
      [0, 'field note', null, 'text/plain', false, true],
      [1, 'payload.bin', null, 'application/octet-stream', true, true],
      [2, 'payload.bin (base64)', { encoding: 'base64', index: 1 }, 'application/octet-stream', true, true],
    ]);
    const [, sent, decoded] = result.parts;
    expect((await bytesOf(sent)).toString('latin1')).toBe(text);
    expect((await bytesOf(decoded)).equals(BINARY)).toBe(true);
    expect(decoded!.sha256).toBe(sha256(BINARY));
    expect(sent!.sha256).toBe(sha256(Buffer.from(text)));
    const found = await Promise.all(
      [sent, decoded].map(async (part) => {
        const matcher = new EicarMatcher();
        matcher.push(await bytesOf(part));
        return matcher.found;
      }),
    );
    expect(found).toEqual([false, true]);
  });

  it('decodes the same however the body is cut into reads: at every offset, and byte by byte', async () => {
    const payload = Buffer.concat([Buffer.from(Array.from({ length: 40 }, (_, i) => i * 6)), Buffer.from('xy')]); // 42 bytes: ends in "=="
    const body = formData(BOUNDARY, [encoded('base64', base64Lines(payload, 12), 'f', 'cut.bin')]);
    for (let at = 0; at <= body.length; at++) {
      const result = await spoolParts(readInPieces([body.subarray(0, at), body.subarray(at)]));
      expect(result.parts.map((p) => partLabel(p)), `cut at ${at}`).toEqual(['cut.bin', 'cut.bin (base64)']);
      expect((await bytesOf(result.parts[1])).equals(payload), `cut at ${at}`).toBe(true);
      expect(result.parts[1]!.sha256, `cut at ${at}`).toBe(sha256(payload));
      await result.dispose();
    }
    const bytes = await spoolParts(readInPieces([...body].map((b) => Buffer.from([b]))));
    expect((await bytesOf(bytes.parts[1])).equals(payload)).toBe(true);
  });

  it('with invalid characters: skipped, "=" ends a quantum and decoding goes on; the split still succeeds', async () => {
    // "QUJD" "REVG" "R0g=" is ABCDEFGH; "Q=" holds no whole byte; "SUo=" is IJ.
    const junk = Buffer.concat([Buffer.from('QUJD*REVG'), Buffer.from([0, 0x21, 0xff]), Buffer.from('R0g=Q=\r\n-_ .SUo=')]);
    const result = await spoolParts(formData(BOUNDARY, [encoded('base64', junk.toString('latin1'))]));
    expect(result.ok).toBe(true);
    expect(result.parts.map((p) => [partLabel(p), p.complete])).toEqual([
      ['payload.bin', true],
      ['payload.bin (base64)', true],
    ]);
    expect((await bytesOf(result.parts[1])).toString('latin1')).toBe('ABCDEFGHIJ');
    expect(result.parts[1]!.sha256).toBe(sha256(Buffer.from('ABCDEFGHIJ')));
  });

  it('keeps all parts, decoded forms included, within the memory budget', async () => {
    const parts = Array.from({ length: 6 }, (_, i) => encoded('base64', base64Lines(Buffer.alloc(20_000, i)), `f${i}`, `${i}.bin`));
    const result = await spoolParts(formData(BOUNDARY, parts), { limits: { memoryBudgetBytes: 100_000 } });
    expect(result.parts).toHaveLength(12);
    const inMemory = result.parts.filter((p) => p.body.memory !== null);
    expect(inMemory.reduce((sum, p) => sum + p.body.size, 0)).toBeLessThanOrEqual(100_000);
    expect(result.parts.some((p) => p.decodedFrom !== null && p.body.path !== null)).toBe(true);
    for (const [i, part] of result.parts.filter((p) => p.decodedFrom !== null).entries()) {
      expect((await bytesOf(part)).equals(Buffer.alloc(20_000, i))).toBe(true);
    }
  });

  it('cut off by a missing close delimiter: the decoded form is kept too, marked incomplete', async () => {
    const body = formData(BOUNDARY, [encoded('base64', base64Lines(BINARY))], { close: false });
    const result = await spoolParts(body);
    expect(result).toMatchObject({ ok: false, reason: 'truncated' });
    expect(result.parts.map((p) => [partLabel(p), p.complete])).toEqual([
      ['payload.bin', false],
      ['payload.bin (base64)', false],
    ]);
    expect((await bytesOf(result.parts[1])).equals(BINARY)).toBe(true);
  });

  it('is recognised in any case and in every Content-Transfer-Encoding field; identity encodings get no decoded form', async () => {
    const payload = Buffer.from('decoded text');
    const body = formData(BOUNDARY, [
      { name: 'a', headers: ['content-transfer-encoding: BASE64'], body: payload.toString('base64') },
      { name: 'b', headers: ['Content-Transfer-Encoding: 7bit', 'Content-Transfer-Encoding: base64 (sic)'], body: payload.toString('base64') },
      ...['7bit', '8bit', 'binary'].map((cte) => ({ name: cte, headers: [`Content-Transfer-Encoding: ${cte}`], body: 'as is' })),
    ]);
    const result = await spoolParts(body);
    expect(result.parts.map((p) => partLabel(p))).toEqual(['field a', 'field a (base64)', 'field b', 'field b (base64)', 'field 7bit', 'field 8bit', 'field binary']);
    expect((await bytesOf(result.parts[1])).equals(payload)).toBe(true);
    expect((await bytesOf(result.parts[3])).equals(payload)).toBe(true);
  });

  it('inside a nested multipart/mixed: the inner part is decoded too, the labels follow each part', async () => {
    const inner = formData('innerB', [
      { headers: ['Content-Disposition: file', 'Content-Transfer-Encoding: base64'], body: base64Lines(EICAR_SIGNATURE) },
    ]);
    const body = formData(BOUNDARY, [{ name: 'files', contentType: 'multipart/mixed; boundary=innerB', body: inner }]);
    const result = await spoolParts(body);
    expect(result.parts.map((p) => [p.index, partLabel(p)])).toEqual([
      [0, 'field files'],
      [1, 'field files'],
      [2, 'field files (base64)'],
    ]);
    expect((await bytesOf(result.parts[2])).equals(EICAR_SIGNATURE)).toBe(true);
  });
});

describe('a quoted-printable part', () => {
  it('with soft line breaks: EICAR split over two lines is whole in the decoded form only', async () => {
    const [head, tail] = [EICAR_SIGNATURE.subarray(0, 30).toString('latin1'), EICAR_SIGNATURE.subarray(30).toString('latin1')];
    const text = `${head}=\r\n${tail}`;
    const result = await spoolParts(formData(BOUNDARY, [encoded('quoted-printable', text, 'doc', 'eicar.txt')]));
    expect(result.parts.map((p) => [partLabel(p), p.decodedFrom])).toEqual([
      ['eicar.txt', null],
      ['eicar.txt (quoted-printable)', { encoding: 'quoted-printable', index: 0 }],
    ]);
    expect((await bytesOf(result.parts[1])).equals(EICAR_SIGNATURE)).toBe(true);
    expect(result.parts[1]!.sha256).toBe(sha256(EICAR_SIGNATURE));
    const matcher = new EicarMatcher();
    matcher.push(await bytesOf(result.parts[0]));
    expect(matcher.found).toBe(false);
  });

  it.each([
    ['=XX and lower-case hex', 'a=3Db=3dc=E9', Buffer.from([0x61, 0x3d, 0x62, 0x3d, 0x63, 0xe9])],
    ['soft breaks with CRLF, bare LF, bare CR and padding after "="', 'one=\r\ntwo=\nthree=  \t\r\nfour=\rfive', Buffer.from('onetwothreefourfive')],
    ['hard line breaks kept, trailing whitespace deleted', 'line one  \t\r\nline two \nend  ', Buffer.from('line one\r\nline two\nend')],
    ['an "=" not starting an escape kept with what follows', 'a=ZZb=4xc= d==3De=', Buffer.from('a=ZZb=4xc= d==e=')],
  ])('%s (RFC 2045 §6.7), cut at every offset', async (_name, text, expected) => {
    const body = formData(BOUNDARY, [encoded('quoted-printable', text, 'q', 'q.txt')]);
    for (let at = 0; at <= body.length; at++) {
      const result = await spoolParts(readInPieces([body.subarray(0, at), body.subarray(at)]));
      expect((await bytesOf(result.parts[1])).toString('latin1'), `cut at ${at}`).toBe(expected.toString('latin1'));
      await result.dispose();
    }
  });
});
