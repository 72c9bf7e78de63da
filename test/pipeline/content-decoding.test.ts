/**
 * Content-Encoding decoding for scanning: every coding and their stacks, the EICAR file found only
 * after decoding, bombs stopped early with bounded memory, corrupt and truncated streams, data
 * after the end of a stream, and no temp file left behind on any path.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { brotliCompressSync, constants, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EICAR_SIGNATURE, EicarMatcher } from '../../src/backends/builtin/eicar.js';
import { looksLikeZlibHeader } from '../../src/pipeline/content-decoding-streams.js';
import {
  decodeContentEncoding,
  parseContentEncoding,
  type ContentDecodingOptions,
  type ContentDecodingResult,
} from '../../src/pipeline/content-decoding.js';
import { BodySpool, liveSpoolFiles, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';

let dir: string;
const results: ContentDecodingResult[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-decoding-test-'));
});

afterEach(async () => {
  await Promise.all(results.splice(0).map((r) => r.dispose()));
  expect(liveSpoolFiles().size).toBe(0);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(extra: Partial<ContentDecodingOptions> = {}): ContentDecodingOptions {
  return { spool: { memoryBytes: 64 * 1024, directory: dir }, ...extra };
}

async function decode(body: Buffer | SpooledBody, encoding: string | undefined, extra: Partial<ContentDecodingOptions> = {}) {
  const input = Buffer.isBuffer(body) ? spooledBodyFromBuffer(body) : body;
  const result = await decodeContentEncoding(input, encoding, options(extra));
  results.push(result);
  return result;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function bytesOf(body: SpooledBody | null): Promise<Buffer> {
  if (!body) throw new Error('no body');
  return collect(body.createReadStream());
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Compressible but not trivially so: text-like lines with a counter. */
function text(bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `line ${i} of a page that compresses the way html does ${i % 97}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** A SpooledBody that counts how many bytes its readers pulled. */
function counting(buf: Buffer): { body: SpooledBody; read: () => number } {
  const inner = spooledBodyFromBuffer(buf);
  let read = 0;
  const body: SpooledBody = {
    size: inner.size,
    memory: inner.memory,
    memoryPieces: inner.memoryPieces,
    path: inner.path,
    createReadStream(start, end) {
      const stream = inner.createReadStream(start, end);
      stream.on('data', (chunk: Buffer) => (read += chunk.length));
      return stream;
    },
  };
  return { body, read: () => read };
}

/** A SpooledBody whose reader yields `buf` as the chunks [0, at) and [at, end). */
function splitAt(buf: Buffer, at: number): SpooledBody {
  const inner = spooledBodyFromBuffer(buf);
  return {
    size: inner.size,
    memory: inner.memory,
    memoryPieces: inner.memoryPieces,
    path: inner.path,
    createReadStream: () => Readable.from([buf.subarray(0, at), buf.subarray(at)].filter((b) => b.length > 0), { objectMode: false }),
  };
}

describe('parseContentEncoding', () => {
  it('lists codings in applied order, case-insensitive, skipping identity and empty elements', () => {
    expect(parseContentEncoding('GZIP , ,identity, br')).toEqual({ ok: true, codings: ['gzip', 'br'] });
    expect(parseContentEncoding('x-gzip')).toEqual({ ok: true, codings: ['gzip'] });
    expect(parseContentEncoding('identity')).toEqual({ ok: true, codings: [] });
    expect(parseContentEncoding(undefined)).toEqual({ ok: true, codings: [] });
  });

  it('names the first coding it cannot undo', () => {
    expect(parseContentEncoding('gzip, zstd')).toEqual({ ok: false, coding: 'zstd' });
    expect(parseContentEncoding('compress')).toEqual({ ok: false, coding: 'compress' });
    expect(parseContentEncoding('toString')).toEqual({ ok: false, coding: 'tostring' });
  });
});

describe('decodeContentEncoding: codings', () => {
  const plain = text(300_000);

  const cases: [string, string, Buffer][] = [
    ['gzip', 'gzip', gzipSync(plain)],
    ['x-gzip', 'x-gzip', gzipSync(plain)],
    ['deflate, zlib-wrapped (RFC 1950)', 'deflate', deflateSync(plain)],
    ['deflate, raw (RFC 1951) as some servers send', 'deflate', deflateRawSync(plain)],
    ['br', 'br', brotliCompressSync(plain)],
    ['gzip then br', 'gzip, br', brotliCompressSync(gzipSync(plain))],
    ['br then raw deflate then gzip', 'br, deflate, gzip', gzipSync(deflateRawSync(brotliCompressSync(plain)))],
    ['two gzip members', 'gzip', Buffer.concat([gzipSync(plain.subarray(0, 1000)), gzipSync(plain.subarray(1000))])],
  ];

  it.each(cases)('decodes %s to the original bytes, spilled to disk, with its SHA-256', async (_name, encoding, encoded) => {
    const result = await decode(encoded, encoding);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.decoded).toBe(true);
    expect(result.body.size).toBe(plain.length);
    expect(result.body.path).not.toBeNull(); // 300 kB > the 64 KiB memory bound
    expect((await bytesOf(result.body)).equals(plain)).toBe(true);
    expect(result.sha256).toBe(sha256(plain));
    await result.dispose();
    expect(liveSpoolFiles().size).toBe(0);
  });

  it('keeps a small decoded body in memory', async () => {
    const result = await decode(gzipSync(Buffer.from('hello')), 'gzip');
    expect(result.ok && result.body.memory?.toString()).toBe('hello');
    expect(liveSpoolFiles().size).toBe(0);
  });

  it('returns the input itself, unread, for identity, no header and an empty body', async () => {
    const raw = Buffer.from('not encoded');
    for (const encoding of [undefined, '', 'identity', ' , identity']) {
      const result = await decode(raw, encoding);
      expect(result).toMatchObject({ ok: true, decoded: false, codings: [], sha256: null });
      expect(result.ok && result.body.memory).toBe(raw);
    }
    const empty = await decode(Buffer.alloc(0), 'gzip');
    expect(empty).toMatchObject({ ok: true, decoded: false, codings: ['gzip'] });
  });

  it('decodes a zlib-wrapped and a raw deflate body larger than every stream buffer (backpressure)', async () => {
    const big = text(6 * 1024 * 1024);
    for (const encoded of [deflateSync(big, { level: 1 }), deflateRawSync(big, { level: 1 })]) {
      const result = await decode(encoded, 'deflate', { spool: { memoryBytes: 0, directory: dir } });
      expect(result.ok && result.sha256).toBe(sha256(big));
    }
  });

  it('tells a zlib header from raw deflate as browsers do (RFC 1950 §2.2)', () => {
    const zlib = deflateSync(Buffer.from('x'));
    expect(looksLikeZlibHeader(zlib[0]!, zlib[1]!)).toBe(true);
    const raw = deflateRawSync(Buffer.from('x'));
    expect(looksLikeZlibHeader(raw[0]!, raw[1]!)).toBe(false);
    expect(looksLikeZlibHeader(0x78, 0x9d)).toBe(false); // checksum off by one
  });
});

describe('decodeContentEncoding: scanning what the client will see', () => {
  it('finds the EICAR file inside gzip only after decoding', async () => {
    const page = Buffer.concat([text(100_000), EICAR_SIGNATURE, text(5000)]);
    const encoded = gzipSync(page);
    const rawMatcher = new EicarMatcher();
    rawMatcher.push(encoded);
    expect(rawMatcher.found).toBe(false);

    const result = await decode(encoded, 'gzip');
    if (!result.ok) throw new Error(result.message);
    const matcher = new EicarMatcher();
    for await (const chunk of result.body.createReadStream()) matcher.push(chunk as Buffer);
    expect(matcher.found).toBe(true);
  });
});

describe('decodeContentEncoding: limits', () => {
  /** 1 MiB of zeros gzips to about 1 KiB; concatenated members make a 10 MiB → 10 GiB bomb. */
  function gzipBomb(encodedBytes: number): Buffer {
    const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
    const copies = Math.ceil(encodedBytes / member.length);
    return Buffer.concat(Array.from({ length: copies }, () => member));
  }

  it('stops a 10 MiB → 10 GiB gzip bomb at the ratio bound, early, with bounded memory', async () => {
    const bomb = gzipBomb(10 * 1024 * 1024);
    expect(bomb.length).toBeGreaterThanOrEqual(10 * 1024 * 1024);
    const { body, read } = counting(bomb);
    globalThis.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const limits = { maxRatio: 2, ratioGraceBytes: 1024 * 1024, maxDecodedBytes: 1024 ** 4 };
    const result = await decode(body, 'gzip', { limits, spool: { memoryBytes: 1024 * 1024, directory: dir } });
    const rssGrowth = process.memoryUsage().rss - rssBefore;

    expect(result).toMatchObject({ ok: false, kind: 'too-large', reason: 'decompression-bomb' });
    if (result.ok) return;
    // The partial is exactly the bound's prefix (2 × 10 MiB), on disk.
    expect(result.partial?.size).toBe(2 * bomb.length);
    expect(result.partial?.path).not.toBeNull();
    // Decoding stopped after about 20 KiB of the 10 MiB input (read-ahead is one 64 KiB chunk plus buffers).
    expect(read()).toBeLessThan(1024 * 1024);
    // Loose: a few stream buffers, not the 20 MiB decoded (let alone 10 GiB).
    expect(rssGrowth).toBeLessThan(64 * 1024 * 1024);
    await result.dispose();
    expect(liveSpoolFiles().size).toBe(0);
  });

  it('reports a plausible ratio past maxDecodedBytes as decoded-too-large', async () => {
    const plain = text(3 * 1024 * 1024);
    const result = await decode(gzipSync(plain), 'gzip', { limits: { maxDecodedBytes: 1024 * 1024, maxRatio: 1000 } });
    expect(result).toMatchObject({ ok: false, kind: 'too-large', reason: 'decoded-too-large' });
    if (result.ok) return;
    expect((await bytesOf(result.partial)).equals(plain.subarray(0, 1024 * 1024))).toBe(true);
  });

  it('bounds every stage: an intermediate bomb whose final output is empty is stopped too', async () => {
    // Raw deflate made of empty stored blocks: 5 MiB that decode to nothing, gzipped to a few KiB.
    const emptyBlock = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]);
    const finalBlock = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]);
    const nothing = Buffer.concat([...Array.from({ length: 1024 * 1024 }, () => emptyBlock), finalBlock]);
    const encoded = gzipSync(nothing, { level: 9 });
    expect(encoded.length).toBeLessThan(64 * 1024);
    const limits = { maxRatio: 100, ratioGraceBytes: 64 * 1024 };
    const result = await decode(encoded, 'deflate, gzip', { limits });
    expect(result).toMatchObject({ ok: false, reason: 'decompression-bomb' });
    expect(result.ok || result.message).toMatch(/gzip decoding/);
  });

  it('decodes real text past 100:1 under the default limits (brotli JSON, logs)', async () => {
    const json = Buffer.from(JSON.stringify(Array.from({ length: 60_000 }, (_, i) => ({ id: i % 5000, ok: true, tag: 'item' }))));
    const encoded = brotliCompressSync(json);
    expect(json.length / encoded.length).toBeGreaterThan(100); // ~415:1
    expect(json.length).toBeGreaterThan(1024 * 1024);
    const result = await decode(encoded, 'br');
    expect(result.ok && result.body.size).toBe(json.length);
  });

  it('allows a high ratio under the grace size (a small page of repeated markup)', async () => {
    const page = Buffer.from('<td></td>'.repeat(50_000)); // ~450 kB, compresses ~500:1
    const result = await decode(gzipSync(page), 'gzip');
    expect(result.ok && result.body.size).toBe(page.length);
  });

  it('refuses unknown codings and too many codings without reading the body', async () => {
    const { body, read } = counting(Buffer.from('whatever'));
    expect(await decode(body, 'gzip, zstd')).toMatchObject({
      ok: false,
      kind: 'unsupported',
      reason: 'unknown-encoding',
      partial: null,
    });
    expect(await decode(body, 'gzip, gzip, gzip, gzip')).toMatchObject({ ok: false, reason: 'too-many-encodings' });
    expect(read()).toBe(0);
  });
});

describe('decodeContentEncoding: damaged streams', () => {
  const page = Buffer.concat([text(20_000), EICAR_SIGNATURE, text(200_000)]);

  it('reports a truncated gzip and keeps the decoded prefix for scanning', async () => {
    const encoded = gzipSync(page);
    const result = await decode(encoded.subarray(0, encoded.length - 1000), 'gzip');
    expect(result).toMatchObject({ ok: false, kind: 'unsupported', reason: 'truncated' });
    if (result.ok) return;
    const prefix = await bytesOf(result.partial);
    expect(prefix.length).toBeGreaterThan(20_000);
    expect(prefix.equals(page.subarray(0, prefix.length))).toBe(true);
    expect(prefix.includes(EICAR_SIGNATURE)).toBe(true);
  });

  it('reports truncated brotli and deflate the same way', async () => {
    const br = brotliCompressSync(page);
    expect(await decode(br.subarray(0, br.length - 10), 'br')).toMatchObject({ ok: false, reason: 'truncated' });
    const zlib = deflateSync(page);
    expect(await decode(zlib.subarray(0, zlib.length - 10), 'deflate')).toMatchObject({ ok: false, reason: 'truncated' });
    expect(await decode(Buffer.from([0x78]), 'deflate')).toMatchObject({ ok: false, reason: 'truncated' });
  });

  it('reports corrupt data, a wrong header and trailing garbage as corrupt', async () => {
    const encoded = gzipSync(page);
    const flipped = Buffer.from(encoded);
    for (let i = 5000; i < 5100; i++) flipped[i] = flipped[i]! ^ 0x5a;
    const corrupt = await decode(flipped, 'gzip');
    expect(corrupt).toMatchObject({ ok: false, kind: 'unsupported', reason: 'corrupt' });
    expect(corrupt.ok || corrupt.partial !== null).toBe(true);

    expect(await decode(Buffer.from('plain text labelled gzip'), 'gzip')).toMatchObject({ ok: false, reason: 'corrupt' });
    expect(await decode(Buffer.from('plain text labelled br!!'), 'br')).toMatchObject({ ok: false, reason: 'corrupt' });
    const garbage = await decode(Buffer.concat([encoded, Buffer.from('trailing garbage')]), 'gzip');
    expect(garbage).toMatchObject({ ok: false, reason: 'corrupt' });
    // Best effort: a prefix of what a lenient client renders (output still buffered when the
    // decoder failed is lost), never bytes that are not there.
    if (garbage.ok) return;
    const prefix = await bytesOf(garbage.partial);
    expect(prefix.equals(page.subarray(0, prefix.length))).toBe(true);
  });

  it('removes the partial temp file on dispose', async () => {
    const encoded = gzipSync(text(2 * 1024 * 1024));
    const result = await decode(encoded.subarray(0, encoded.length - 100), 'gzip', {
      spool: { memoryBytes: 1024, directory: dir },
    });
    expect(result.ok || result.partial?.path).toBeTruthy();
    expect(liveSpoolFiles().size).toBe(1);
    await result.dispose();
    await result.dispose();
    expect(liveSpoolFiles().size).toBe(0);
  });
});

describe('decodeContentEncoding: data after the end of the stream', () => {
  // Node's zlib stops at a stream's end and drops the rest; a client that does not decode saves
  // it. Every split point of each body, since where a chunk ends changes what zlib is given.
  const clean = text(260);
  const eicar = Buffer.concat([Buffer.from('\n'), EICAR_SIGNATURE]);
  const zeros = Buffer.alloc(16);
  const gz = gzipSync(clean);
  const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);

  const trailing: [string, string, string, Buffer][] = [
    ['gzip, zero padding, then EICAR', 'gzip', 'gzip', cat(gz, zeros, eicar)],
    ['gzip, zero padding, then another gzip member', 'gzip', 'gzip', cat(gz, zeros, gzipSync(eicar))],
    ['two gzip members, zero padding, then EICAR', 'gzip', 'gzip', cat(gzipSync(clean.subarray(0, 100)), gzipSync(clean.subarray(100)), zeros, eicar)],
    ['deflate (zlib-wrapped), then EICAR', 'deflate', 'deflate', cat(deflateSync(clean), eicar)],
    ['deflate (raw), then EICAR', 'deflate', 'deflate', cat(deflateRawSync(clean), eicar)],
    ['deflate (zlib-wrapped), then zeros: padding is a gzip convention only', 'deflate', 'deflate', cat(deflateSync(clean), zeros)],
    ['br, then EICAR', 'br', 'br', cat(brotliCompressSync(clean), eicar)],
    ['gzip, br with EICAR after the br stream', 'gzip, br', 'br', cat(brotliCompressSync(gz), eicar)],
    ['gzip, br with EICAR after the gzip stream inside br', 'gzip, br', 'gzip', brotliCompressSync(cat(gz, zeros, eicar))],
    ['deflate, gzip with EICAR after the raw deflate stream inside gzip', 'deflate, gzip', 'deflate', gzipSync(cat(deflateRawSync(clean), eicar))],
  ];

  it.each(trailing)('%s: corrupt at every split point, the whole decoded body kept as the partial', async (_name, encoding, stage, encoded) => {
    for (let at = 0; at <= encoded.length; at++) {
      const result = await decode(splitAt(encoded, at), encoding);
      expect(result, `split at ${at}`).toMatchObject({ ok: false, kind: 'unsupported', reason: 'corrupt' });
      if (result.ok) return;
      expect(result.message).toContain(`trailing data after the end of the ${stage} stream`);
      expect((await bytesOf(result.partial)).equals(clean), `split at ${at}`).toBe(true);
      await result.dispose();
    }
  });

  it('says where the stream ended and how much followed', async () => {
    const result = await decode(cat(gz, zeros, eicar), 'gzip');
    expect(result.ok || result.message).toBe(
      `corrupt stream: ${zeros.length + eicar.length} bytes of trailing data after the end of the gzip stream (at byte ${gz.length} of its input)`,
    );
  });

  const padded: [string, Buffer][] = [
    ['one gzip member', cat(gz, zeros)],
    ['two gzip members', cat(gzipSync(clean.subarray(0, 100)), gzipSync(clean.subarray(100)), zeros, zeros)],
  ];

  it.each(padded)('%s followed by zero padding only decodes, at every split point (as gzip(1) accepts)', async (_name, encoded) => {
    for (let at = 0; at <= encoded.length; at++) {
      const result = await decode(splitAt(encoded, at), 'gzip');
      expect(result.ok && result.sha256, `split at ${at}`).toBe(sha256(clean));
      await result.dispose();
    }
  });
});

describe('decodeContentEncoding: abort and I/O', () => {
  it('stops on abort with no partial and no temp file after dispose', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(await decode(gzipSync(text(1000)), 'gzip', { signal: controller.signal })).toMatchObject({
      ok: false,
      kind: 'timeout',
      reason: 'aborted',
      partial: null,
    });

    const late = new AbortController();
    const big = gzipSync(text(8 * 1024 * 1024), { level: 1 });
    const { body } = counting(big);
    const pending = decode(body, 'gzip', { signal: late.signal, spool: { memoryBytes: 0, directory: dir } });
    setImmediate(() => late.abort());
    expect(await pending).toMatchObject({ ok: false, reason: 'aborted', partial: null });
  });

  it('reports a body whose spool was already disposed as an I/O error', async () => {
    const spool = new BodySpool({ memoryBytes: 0, directory: dir });
    spool.write(gzipSync(text(1000)));
    const body = await spool.end();
    await spool.dispose();
    expect(await decode(body, 'gzip')).toMatchObject({ ok: false, kind: 'backend-error', reason: 'io-error' });
  });

  it('reports a decoded spool that cannot be written as an I/O error', async () => {
    const result = await decode(gzipSync(text(100_000)), 'gzip', {
      spool: { memoryBytes: 0, directory: join(dir, 'missing') },
    });
    expect(result).toMatchObject({ ok: false, kind: 'backend-error', reason: 'io-error', partial: null });
  });
});
