/**
 * The body spool (DESIGN.md step 4): bytes stay in memory up to `memoryBytes`, then spill to a
 * private temp file, so memory stays bounded whatever the body size.
 *
 *   write(chunk) ──► memory chunks ──(size > memoryBytes)──► fs.WriteStream ('wx', 0600)
 *                                                             │  write() === false → wait 'drain'
 *   end() ──► SpooledBody { memory | path }                   ▼
 *   dispose() ──► drop memory, close + unlink the file      <dir>/icap-bridge-<random>.body
 *
 * An ended in-memory body may also adopt a complete copy of itself that a reader wrote to a file
 * (SpooledBody.adoptCopy: clamd's `transfer: path` writes one to scan); the memory goes and the
 * file is the body's from then on, removed by dispose() like a spilled one. Such a file keeps the
 * writer's mode (0640 for clamd's copy, src/backends/clamd/scan-file.ts), not the spool's 0600.
 *
 * Who holds the caller's chunks:
 * - In memory, MemoryChunks (memory-chunks.ts) keeps pieces of 4 KiB or more as the caller's
 *   views and copies smaller ones into blocks of its own: no second copy of a large body, and no
 *   pinned socket buffers for a body sent as tiny chunked-encoding pieces.
 * - On disk, the chunk goes to fs.WriteStream as the view it is and is held only until written
 *   (at most about one write buffer, since the caller waits for 'drain'). That is safe because
 *   Node never reuses the Buffers it hands to a socket's 'data' listener and the decoder passes
 *   `subarray` views of those (STYLE.md, "Cursor, not copies"). A caller that recycles its
 *   buffers must copy before write().
 */
import { EventEmitter } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CodedError, type ErrorCode } from '../errors.js';
import type { SpooledBody } from './spooled-body.js';
import { createSpooledBodyReader, spooledBodyFromBuffer } from './spooled-body-reader.js';
import { MemoryChunks } from './memory-chunks.js';
import { randomFileName } from './temp-name.js';

export { spooledBodyFromBuffer };

export interface SpoolOptions {
  /** Bytes kept in memory; a body larger than this goes to a temp file. */
  memoryBytes: number;
  /** Existing directory for temp files. */
  directory: string;
}

/** Error codes a spool throws or rejects with. */
export const SPOOL_ERROR_CODES = {
  /** write()/end() after end() or dispose(), or reading a disposed body. */
  closed: 'ICAP_ERR_SPOOL_CLOSED',
  /** The temp file could not be created or written (ENOSPC, EACCES, missing directory...). */
  io: 'ICAP_ERR_SPOOL_IO',
} as const satisfies Record<string, ErrorCode>;

export class SpoolError extends CodedError<(typeof SPOOL_ERROR_CODES)[keyof typeof SPOOL_ERROR_CODES]> {}

// Process-wide bookkeeping for tests and metrics. Only this module mutates it.
const livePaths = new Set<string>();
let bytesOnDisk = 0;

/** Temp files that currently exist (created and not yet unlinked). */
export function liveSpoolFiles(): ReadonlySet<string> {
  return livePaths;
}

/** Bytes accepted into temp files by all spools not yet disposed. */
export function spoolBytesOnDisk(): number {
  return bytesOnDisk;
}

type SpoolState = 'memory' | 'disk' | 'ended' | 'disposed';

const WRITE_BUFFER_BYTES = 64 * 1024;

/** The event onWritable() waits for besides 'drain' (not 'error': an unheard 'error' throws). */
const FAILED = Symbol('failed');

/**
 * Emits 'drain' after write() returned false, and 'error' (only when someone listens, e.g.
 * `events.once(spool, 'drain')`) when the temp file fails. A failure is also remembered: the
 * next write() throws it, end() rejects with it and `failure` holds it, so nobody has to listen
 * for 'error'. A writer that waits uses onWritable(), which a failure also ends: a full disk
 * (ENOSPC), a file size limit (EFBIG) or an I/O error never sends 'drain'.
 */
export class BodySpool extends EventEmitter {
  readonly #memoryBytes: number;
  readonly #directory: string;
  readonly #expectedBytes: number;
  #state: SpoolState = 'memory';
  #size = 0;
  /** The in-memory bytes; null until the first byte, and after spilling. */
  #memory: MemoryChunks | null = null;
  #file: WriteStream | null = null;
  #path: string | null = null;
  /** True once open(2) succeeded: only then is the path ours to unlink (never after EEXIST). */
  #opened = false;
  #diskBytes = 0;
  #error: SpoolError | null = null;
  #ending: Promise<SpooledBody> | null = null;
  #disposing: Promise<void> | null = null;

  /**
   * `expectedBytes`: the body's announced length (the encapsulated HTTP Content-Length), when
   * there is one. Above memoryBytes the body goes to the temp file from its first byte instead of
   * filling memory first and copying it out. A wrong value costs only a body on disk that would
   * have fit in memory. (A separate argument: spreading it into `opts` per request was measurable.)
   */
  constructor(opts: SpoolOptions, expectedBytes: number | null = null) {
    super();
    if (!Number.isSafeInteger(opts.memoryBytes) || opts.memoryBytes < 0) {
      throw new RangeError(`memoryBytes must be a non-negative integer, got ${opts.memoryBytes}`);
    }
    this.#memoryBytes = opts.memoryBytes;
    this.#directory = opts.directory;
    this.#expectedBytes = expectedBytes ?? 0;
  }

  get size(): number {
    return this.#size;
  }

  /** Why the temp file failed (creating or writing it), or null while it has not. */
  get failure(): SpoolError | null {
    return this.#error;
  }

  /**
   * Calls `listener` once, when write() may be called again after it returned false: at the
   * next 'drain', or at a failure of the temp file (then `failure` says why), whichever comes
   * first. At once if the file has already failed.
   */
  onWritable(listener: () => void): void {
    if (this.#error) {
      listener();
      return;
    }
    const onDrain = (): void => {
      this.off(FAILED, onFailed);
      listener();
    };
    const onFailed = (): void => {
      this.off('drain', onDrain);
      listener();
    };
    this.once('drain', onDrain);
    this.once(FAILED, onFailed);
  }

  /**
   * Leading bytes readable before the body is complete (trickle delivery forwards them while the
   * rest arrives; src/server/trickle.ts): all of them in memory, on disk those the temp file holds.
   */
  get readableBytes(): number {
    if (this.#state === 'disposed' || this.#error) return 0;
    return this.#file === null ? this.#size : this.#file.bytesWritten;
  }

  /** Streams [start, end) of the readable bytes (readableBytes) while the body may still arrive. */
  createEarlyReadStream(start: number, end: number): Readable {
    if (end > this.readableBytes) throw new RangeError(`bytes [${start}, ${end}) are not readable yet (${this.readableBytes})`);
    const assertUsable = (): void => {
      if (this.#state === 'disposed') throw new SpoolError(SPOOL_ERROR_CODES.closed, 'body used after dispose');
    };
    // In memory views are safe: MemoryChunks never rewrites bytes it holds.
    const source =
      this.#path === null
        ? { size: end, memory: this.#memory ?? Buffer.alloc(0), path: null }
        : { size: end, memory: null, path: this.#path };
    return createSpooledBodyReader({ ...source, assertUsable }).createReadStream(start, end);
  }

  /**
   * Appends bytes. Returns false when the caller should wait for 'drain' before writing more
   * (the temp file's write buffer is full), like fs.WriteStream.write. In memory the bytes are
   * copied; once spilled the chunk is held until written (see the file comment).
   */
  write(chunk: Buffer): boolean {
    if (this.#state === 'ended' || this.#state === 'disposed') {
      throw new SpoolError(SPOOL_ERROR_CODES.closed, `write after ${this.#state === 'ended' ? 'end' : 'dispose'}`);
    }
    if (this.#error) throw this.#error;
    if (chunk.length === 0) return this.#file ? !this.#file.writableNeedDrain : true;
    if (this.#state === 'memory') {
      if (this.#size + chunk.length <= this.#memoryBytes && this.#expectedBytes <= this.#memoryBytes) {
        this.#appendToMemory(chunk);
        return true;
      }
      return this.#spill(chunk);
    }
    this.#size += chunk.length;
    return this.#writeToFile(chunk);
  }

  /** Finishes the body: flushes and closes the temp file when spilled. Idempotent. */
  end(): Promise<SpooledBody> {
    if (this.#ending) return this.#ending;
    if (this.#state === 'disposed') {
      return Promise.reject(new SpoolError(SPOOL_ERROR_CODES.closed, 'end after dispose'));
    }
    const wasOnDisk = this.#state === 'disk';
    this.#state = 'ended';
    this.#ending = wasOnDisk ? this.#finishFile() : Promise.resolve(this.#finishMemory());
    return this.#ending;
  }

  /**
   * Drops the memory and removes the temp file. Safe at any time and any number of times; the
   * SpooledBody from end() must not be used afterwards. Call it on every path.
   */
  dispose(): Promise<void> {
    this.#disposing ??= this.#dispose();
    return this.#disposing;
  }

  #finishMemory(): SpooledBody {
    return this.#body(this.#memory ?? Buffer.alloc(0), null, (path) => this.#adopt(path));
  }

  /** SpooledBody.adoptCopy of the ended in-memory body: `path` holds all #size bytes. */
  #adopt(path: string): boolean {
    if (this.#state !== 'ended' || this.#path !== null) return false;
    this.#path = path;
    // An existing file, complete: ours to unlink at dispose.
    this.#opened = true;
    livePaths.add(path);
    this.#diskBytes = this.#size;
    bytesOnDisk += this.#size;
    this.#memory = null;
    return true;
  }

  async #finishFile(): Promise<SpooledBody> {
    const file = this.#file!;
    if (this.#error) throw this.#error;
    // 'close' (not 'finish') so the descriptor is released before readers open the path.
    await new Promise<void>((resolve, reject) => {
      file.once('close', () => (this.#error ? reject(this.#error) : resolve()));
      file.end();
    });
    if (this.#state === 'disposed') throw new SpoolError(SPOOL_ERROR_CODES.closed, 'disposed before end finished');
    return this.#body(null, this.#path);
  }

  #body(memory: Buffer | MemoryChunks | null, path: string | null, adopt?: (path: string) => boolean): SpooledBody {
    return createSpooledBodyReader({
      size: this.#size,
      memory,
      path,
      assertUsable: () => {
        if (this.#state === 'disposed') throw new SpoolError(SPOOL_ERROR_CODES.closed, 'body used after dispose');
      },
      ...(adopt === undefined ? {} : { adopt }),
    });
  }

  #appendToMemory(chunk: Buffer): void {
    (this.#memory ??= new MemoryChunks()).append(chunk);
    this.#size += chunk.length;
  }

  /** First time over the threshold: create the file, then write what memory holds and `chunk`. */
  #spill(chunk: Buffer): boolean {
    this.#state = 'disk';
    const path = join(this.#directory, randomFileName('icap-bridge-', '.body'));
    this.#path = path;
    // Registered before open(2) finishes so dispose() racing the open still cleans up.
    livePaths.add(path);
    const file = createWriteStream(path, { flags: 'wx', mode: 0o600, highWaterMark: WRITE_BUFFER_BYTES });
    this.#file = file;
    file.once('open', () => {
      this.#opened = true;
    });
    file.on('drain', () => this.emit('drain'));
    file.on('error', (err) => this.#fail(err));
    const held = this.#memory?.pieces() ?? [];
    this.#memory = null;
    this.#size += chunk.length;
    // cork/uncork turns these into one writev(2).
    file.cork();
    for (const piece of held) this.#writeToFile(piece);
    const ok = this.#writeToFile(chunk);
    file.uncork();
    return ok;
  }

  #writeToFile(chunk: Buffer): boolean {
    this.#diskBytes += chunk.length;
    bytesOnDisk += chunk.length;
    return this.#file!.write(chunk);
  }

  #fail(err: Error): void {
    if (this.#error || this.#state === 'disposed') return;
    this.#error = new SpoolError(SPOOL_ERROR_CODES.io, `spool file ${this.#path}: ${err.message}`, { cause: err });
    if (this.listenerCount('error') > 0) this.emit('error', this.#error);
    this.emit(FAILED);
  }

  async #dispose(): Promise<void> {
    this.#state = 'disposed';
    this.#memory = null;
    bytesOnDisk -= this.#diskBytes;
    this.#diskBytes = 0;
    const file = this.#file;
    const path = this.#path;
    // No path: the body stayed in memory. A path without a file: an adopted copy (#adopt).
    if (path === null) return;
    // destroy() waits for a pending open(2) before closing, so after 'close' the descriptor is
    // gone and #opened says whether the file is ours.
    if (file !== null && !file.closed) {
      await new Promise<void>((resolve) => {
        file.once('close', resolve);
        file.destroy();
      });
    }
    try {
      if (this.#opened) await unlink(path);
    } catch (err) {
      // Anything but "already gone" leaves the file listed as live, so metrics and tests see it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    livePaths.delete(path);
  }
}
