/**
 * The stream stages content-decoding.ts chains: one decoder per coding (node:zlib) and a byte
 * limiter after each decoder that stops the chain the moment a stage's output passes its bound.
 *
 * "deflate" is meant to be zlib-wrapped (RFC 9110 §8.4.1.2, RFC 1950), but some servers send a
 * raw RFC 1951 stream. Browsers look at the first two bytes and pick (Chromium's
 * gzip_source_stream.cc, Firefox's nsHTTPCompressConv.cpp); so do we, so that we scan what the
 * browser will see.
 *
 * Input after the end of a stream: zlib, raw deflate and brotli streams carry their own end (the
 * final block, RFC 1951 §3.2.3; the Adler-32 trailer, RFC 1950 §2.2; ISLAST, RFC 7932 §9.2), and
 * Node's zlib stops there and silently drops whatever else it is given; gunzip goes on into
 * further members (RFC 1952 §2.2) but drops everything from a zero byte that follows a member.
 * A client that does not decode (curl -o, wget) saves those bytes as they are, so a decoder that
 * leaves input unconsumed reports it (`trailing`) and the body must not pass as decoded.
 */
import { finished, Transform, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate, createInflateRaw, type Zlib } from 'node:zlib';
import type { ContentCoding } from './content-decoding-header.js';

/** Output bytes per zlib chunk; each stage holds about one or two of these. */
const ZLIB_CHUNK_BYTES = 16 * 1024;

/** Input a decoder was given after the end of its coding's stream. */
export interface TrailingInput {
  /** Where the stream ended, as an offset in this stage's input. */
  readonly offset: number;
  /** Bytes from there to the end of the input (zero padding included). */
  readonly bytes: number;
}

/** A decoding stage; `trailing` is final once the stage has ended without error. */
export type Decoder = Transform & { readonly trailing: TrailingInput | null };

export function createDecoder(coding: ContentCoding): Decoder {
  return new CheckedDecoder(coding);
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
 * - head: deflate only, holding the first two bytes to pick zlib or raw.
 * - decoding: every chunk goes to the zlib stream, all of it consumed so far.
 * - padding: gzip only; the member ended and only zero bytes followed. gzip(1) and Node's gunzip
 *   accept zeros there (tape-block padding), and zeros hide nothing, so this alone is success.
 * - trailing: the stream ended and something else followed: counted, never decoded.
 */
type DecoderState = 'head' | 'decoding' | 'padding' | 'trailing';

/**
 * Wraps one node:zlib stream, with backpressure both ways: a chunk is done once the zlib stream
 * has processed it (its write callback), and the inner readable is paused while our own readable
 * buffer is full. After each chunk it compares the zlib stream's `bytesWritten` (input bytes the
 * engine consumed: lib/zlib.js processCallback adds each call's consumed bytes) with what it was
 * given: a chunk's unconsumed bytes are its tail, since zlib reads its input front to back and
 * Node drops the rest of a chunk once the stream has ended.
 */
class CheckedDecoder extends Transform {
  readonly #coding: ContentCoding;
  #state: DecoderState;
  #head: Buffer = Buffer.alloc(0);
  #inner: (Transform & Zlib) | null = null;
  /** Bytes of our input seen so far. */
  #seen = 0;
  #streamEnd = -1;

  constructor(coding: ContentCoding) {
    super();
    this.#coding = coding;
    this.#state = coding === 'deflate' ? 'head' : 'decoding';
    if (coding === 'gzip') this.#start(createGunzip({ chunkSize: ZLIB_CHUNK_BYTES }));
    if (coding === 'br') this.#start(createBrotliDecompress({ chunkSize: ZLIB_CHUNK_BYTES }));
  }

  get trailing(): TrailingInput | null {
    return this.#state === 'trailing' ? { offset: this.#streamEnd, bytes: this.#seen - this.#streamEnd } : null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const offset = this.#seen;
    this.#seen += chunk.length;
    switch (this.#state) {
      case 'head': {
        const head = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
        if (head.length < 2) {
          this.#head = Buffer.from(head);
          done();
          return;
        }
        this.#head = Buffer.alloc(0);
        const options = { chunkSize: ZLIB_CHUNK_BYTES };
        this.#start(looksLikeZlibHeader(head[0]!, head[1]!) ? createInflate(options) : createInflateRaw(options));
        this.#state = 'decoding';
        this.#decode(head, offset - (head.length - chunk.length), done);
        return;
      }
      case 'decoding':
        this.#decode(chunk, offset, done);
        return;
      case 'padding':
        if (!isAllZero(chunk)) this.#state = 'trailing';
        done();
        return;
      case 'trailing':
        done();
        return;
    }
  }

  override _flush(done: TransformCallback): void {
    if (!this.#inner) {
      // Fewer than two bytes in all: not a zlib stream; raw inflate reports it truncated.
      this.#start(createInflateRaw({ chunkSize: ZLIB_CHUNK_BYTES }));
      if (this.#head.length > 0) this.#inner!.write(this.#head);
    }
    // finished(), not once('end'): a stream that ended early may have emitted 'end' already.
    // An error is left to the 'error' listener, which destroys this stage.
    finished(this.#inner!, (err) => {
      if (!err) done();
    });
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

  /** `chunk` starts at `offset` in our input. */
  #decode(chunk: Buffer, offset: number, done: TransformCallback): void {
    const inner = this.#inner!;
    const before = inner.bytesWritten;
    inner.write(chunk, (err) => {
      if (err || this.destroyed) return; // the 'error' listener has destroyed this stage
      const consumed = inner.bytesWritten - before;
      if (consumed < chunk.length) {
        this.#streamEnd = offset + consumed;
        const rest = chunk.subarray(consumed);
        this.#state = this.#coding === 'gzip' && isAllZero(rest) ? 'padding' : 'trailing';
      }
      done();
    });
  }

  #start(inner: Transform & Zlib): void {
    this.#inner = inner;
    inner.on('data', (data: Buffer) => {
      if (!this.push(data)) inner.pause();
    });
    inner.on('error', (err: Error) => this.destroy(err));
  }
}

function isAllZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
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
