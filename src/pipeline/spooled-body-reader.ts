/**
 * Read side of a spooled body: ranged streams from memory or from the temp file, never the whole
 * large body as one Buffer (spooled-body.ts).
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { SpooledBody } from './spooled-body.js';
import { MemoryChunks } from './memory-chunks.js';

/** Chunk size for both sources; matches the scan worker's read size. */
const READ_CHUNK_BYTES = 64 * 1024;

export interface SpooledBodySource {
  readonly size: number;
  /** One Buffer (built responses, tests) or the spool's pieces. */
  readonly memory: Buffer | MemoryChunks | null;
  readonly path: string | null;
  /** Throws when the owning spool was disposed (the file may be gone). */
  readonly assertUsable?: () => void;
  /** The owner takes over a complete copy of the in-memory body (SpooledBody.adoptCopy); false when it cannot. */
  readonly adopt?: (path: string) => boolean;
}

export function createSpooledBodyReader(source: SpooledBodySource): SpooledBody {
  if ((source.memory === null) === (source.path === null)) throw new TypeError('exactly one of memory and path must be set');
  return new SpooledBodyReader(source);
}

/**
 * A class rather than an object literal: the getters then live on the prototype, where a literal
 * with accessors made V8 build a slow dictionary-mode object for every body (measurable at 4 KiB).
 */
class SpooledBodyReader implements SpooledBody {
  readonly size: number;
  #path: string | null;
  #buffer: Buffer | null;
  #pieces: MemoryChunks | null;
  readonly #assertUsable: (() => void) | undefined;
  readonly #adopt: ((path: string) => boolean) | undefined;

  constructor(source: SpooledBodySource) {
    this.size = source.size;
    this.#path = source.path;
    this.#pieces = source.memory instanceof MemoryChunks ? source.memory : null;
    this.#buffer = source.memory instanceof MemoryChunks ? null : source.memory;
    this.#assertUsable = source.assertUsable;
    this.#adopt = source.adopt;
  }

  get path(): string | null {
    return this.#path;
  }

  adoptCopy(path: string): boolean {
    if (this.#path !== null || this.#adopt === undefined || !this.#adopt(path)) return false;
    // Dropped, not cleared: a reader that took the pieces or the Buffer before keeps valid bytes.
    this.#pieces = null;
    this.#buffer = null;
    this.#path = path;
    return true;
  }

  get memory(): Buffer | null {
    return this.#pieces !== null ? this.#pieces.toBuffer() : this.#buffer;
  }

  get memoryPieces(): readonly Buffer[] | null {
    if (this.#pieces !== null) return this.#pieces.pieces();
    return this.#buffer === null ? null : [this.#buffer];
  }

  createReadStream(start = 0, end = this.size): Readable {
    this.#assertUsable?.();
    checkRange(start, end, this.size);
    if (start === end) return Readable.from([], { objectMode: false });
    if (this.#pieces !== null) return Readable.from(this.#pieces.slice(start, end, READ_CHUNK_BYTES), { objectMode: false });
    if (this.#buffer !== null) return Readable.from(sliceMemory(this.#buffer, start, end), { objectMode: false });
    // fs ranges are inclusive; ours are [start, end).
    return createReadStream(this.#path!, { start, end: end - 1, highWaterMark: READ_CHUNK_BYTES });
  }
}

/** A body we already hold in memory (built responses, tests). */
export function spooledBodyFromBuffer(buf: Buffer): SpooledBody {
  return createSpooledBodyReader({ size: buf.length, memory: buf, path: null });
}

/** Views, not copies, in read-sized pieces so a consumer's backpressure has something to act on. */
function* sliceMemory(memory: Buffer, start: number, end: number): Generator<Buffer> {
  for (let at = start; at < end; at += READ_CHUNK_BYTES) {
    yield memory.subarray(at, Math.min(at + READ_CHUNK_BYTES, end));
  }
}

function checkRange(start: number, end: number, size: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > size) {
    throw new RangeError(`invalid body range [${start}, ${end}) for a body of ${size} bytes`);
  }
}
