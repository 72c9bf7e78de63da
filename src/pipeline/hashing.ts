/**
 * SHA-256 computed while bytes pass by, so the verdict cache key (verdict-cache.ts), hash lists
 * and a backend's hash lookup (MetaDefender's hash_lookup, ScanMeta.bodySha256) cost no second
 * read of a spooled body.
 *
 * Contract:
 * - `Sha256Accumulator`: call `update(chunk)` with every chunk you hand to the spool, in order,
 *   then `hex()` once the body is complete. `hex()` finishes the hash; later `update()` throws
 *   and later `hex()` returns the same string. Chunks are hashed at once and never held.
 * - `createSha256Tap()`: the same as a pass-through Transform for stream pipelines (the decoded
 *   output of content-decoding.ts, multipart parts); `hex()` is valid after the tap has flushed.
 * - `sha256OfSpooledBody()`: one streaming read, for bodies that were spooled without a tap (a
 *   backend's lookup when no digest was computed on arrival).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { SpooledBody } from './spooled-body.js';

export class Sha256Accumulator {
  #hash: Hash | null = createHash('sha256');
  #hex: string | null = null;
  #bytes = 0;

  /** Bytes hashed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  update(chunk: Uint8Array): void {
    if (!this.#hash) throw new Error('Sha256Accumulator.update after hex()');
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
  }

  /** Lower-case hex digest of everything passed to update(). */
  hex(): string {
    if (this.#hex === null) {
      this.#hex = this.#hash!.digest('hex');
      this.#hash = null;
    }
    return this.#hex;
  }
}

/** A pass-through Transform that hashes what flows through it. */
export interface Sha256Tap extends Transform {
  /** Bytes that passed so far. */
  readonly bytes: number;
  /** The digest; throws before the stream has flushed (the hash would be of a prefix). */
  hex(): string;
}

export function createSha256Tap(): Sha256Tap {
  const acc = new Sha256Accumulator();
  let flushed = false;
  const tap = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      acc.update(chunk);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      flushed = true;
      acc.hex();
      done();
    },
  });
  return Object.defineProperties(tap, {
    bytes: { get: () => acc.bytes },
    hex: {
      value: () => {
        if (!flushed) throw new Error('sha256 tap read before its stream ended');
        return acc.hex();
      },
    },
  }) as Sha256Tap;
}

/** SHA-256 of a spooled body in one streaming read (memory stays at one read chunk). */
export async function sha256OfSpooledBody(body: SpooledBody, signal?: AbortSignal): Promise<string> {
  signal?.throwIfAborted();
  const acc = new Sha256Accumulator();
  const stream = body.createReadStream();
  const onAbort = (): void => {
    stream.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) acc.update(chunk as Buffer);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // for-await destroys the stream when the loop exits early; this covers every other exit.
    stream.destroy();
  }
  return acc.hex();
}
