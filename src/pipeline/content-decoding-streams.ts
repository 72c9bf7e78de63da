/**
 * The stream stages content-decoding.ts chains: one decoder per coding (node:zlib) and a byte
 * limiter after each decoder that stops the chain the moment a stage's output passes its bound.
 *
 * "deflate" is meant to be zlib-wrapped (RFC 9110 §8.4.1.2, RFC 1950), but some servers send a
 * raw RFC 1951 stream. Browsers look at the first two bytes and pick (Chromium's
 * gzip_source_stream.cc, Firefox's nsHTTPCompressConv.cpp); so do we, so that we scan what the
 * browser will see.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate, createInflateRaw } from 'node:zlib';
import type { ContentCoding } from './content-decoding-header.js';

/** Output bytes per zlib chunk; each stage holds about one or two of these. */
const ZLIB_CHUNK_BYTES = 16 * 1024;

export function createDecoder(coding: ContentCoding): Transform {
  switch (coding) {
    case 'gzip':
      // Also decodes concatenated gzip members (RFC 1952 §2.2), as browsers do.
      return createGunzip({ chunkSize: ZLIB_CHUNK_BYTES });
    case 'deflate':
      return new DeflateDecoder();
    case 'br':
      return createBrotliDecompress({ chunkSize: ZLIB_CHUNK_BYTES });
  }
}

/**
 * RFC 1950 §2.2: CM (low nibble of CMF) is 8, CINFO (high nibble) at most 7, and CMF·256 + FLG is
 * a multiple of 31. A raw deflate stream rarely passes all three by accident; when it does, the
 * zlib decoder fails and the body is reported corrupt, never passed as clean.
 */
export function looksLikeZlibHeader(cmf: number, flg: number): boolean {
  return (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && (cmf * 256 + flg) % 31 === 0;
}

/**
 * Holds the first two bytes, picks createInflate or createInflateRaw, then passes everything
 * through that decoder with backpressure both ways: our writes wait for the inner 'drain', and
 * the inner readable is paused while our own readable buffer is full.
 */
class DeflateDecoder extends Transform {
  #head: Buffer = Buffer.alloc(0);
  #inner: Transform | null = null;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (!this.#inner) {
      const head = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
      if (head.length < 2) {
        this.#head = Buffer.from(head);
        done();
        return;
      }
      this.#head = Buffer.alloc(0);
      this.#start(looksLikeZlibHeader(head[0]!, head[1]!));
      chunk = head;
    }
    const inner = this.#inner!;
    if (inner.write(chunk)) done();
    else inner.once('drain', () => done());
  }

  override _flush(done: TransformCallback): void {
    if (!this.#inner) {
      // Fewer than two bytes in all: not a zlib stream; raw inflate reports it truncated.
      this.#start(false);
      if (this.#head.length > 0) this.#inner!.write(this.#head);
    }
    this.#inner!.once('end', () => done());
    this.#inner!.end();
  }

  override _read(size: number): void {
    this.#inner?.resume();
    super._read(size);
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    this.#inner?.destroy();
    done(err);
  }

  #start(zlibWrapped: boolean): void {
    const options = { chunkSize: ZLIB_CHUNK_BYTES };
    const inner = zlibWrapped ? createInflate(options) : createInflateRaw(options);
    this.#inner = inner;
    inner.on('data', (data: Buffer) => {
      if (!this.push(data)) inner.pause();
    });
    inner.on('error', (err: Error) => this.destroy(err));
  }
}

/** Why a stage's output was cut off. */
export type OutputLimitReason = 'decompression-bomb' | 'decoded-too-large';

export class OutputLimitError extends Error {
  readonly reason: OutputLimitReason;
  /** Bytes the stage had produced when it was stopped. */
  readonly outputBytes: number;
  constructor(reason: OutputLimitReason, outputBytes: number, message: string) {
    super(message);
    this.name = 'OutputLimitError';
    this.reason = reason;
    this.outputBytes = outputBytes;
  }
}

export interface OutputBounds {
  /** Absolute bound on the stage's output. */
  readonly maxBytes: number;
  /** Output past this is a bomb: max(ratio grace, maxRatio × encoded size). */
  readonly ratioBytes: number;
  /** For the error message. */
  readonly describe: string;
}

/**
 * Passes bytes until `bounds` would be passed; then forwards exactly up to the bound (so a partial
 * body is the bound's prefix) and fails the pipeline, which destroys the decoders upstream.
 */
export function createOutputLimiter(bounds: OutputBounds): Transform & { readonly outputBytes: number } {
  let seen = 0;
  const cap = Math.min(bounds.maxBytes, bounds.ratioBytes);
  const limiter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      if (seen + chunk.length <= cap) {
        seen += chunk.length;
        done(null, chunk);
        return;
      }
      const room = cap - seen;
      seen = cap;
      if (room > 0) this.push(chunk.subarray(0, room));
      // The ratio bound wins a tie: a stream that is over both is a bomb first.
      const reason: OutputLimitReason = bounds.ratioBytes <= bounds.maxBytes ? 'decompression-bomb' : 'decoded-too-large';
      const limit = reason === 'decompression-bomb' ? `ratio bound of ${bounds.ratioBytes} bytes` : `${bounds.maxBytes} bytes`;
      done(new OutputLimitError(reason, seen, `${bounds.describe} output passed the ${limit}`));
    },
  });
  return Object.defineProperty(limiter, 'outputBytes', { get: () => seen }) as Transform & { readonly outputBytes: number };
}
