/**
 * The body of a streaming scan (StreamingScan.write), as a BodySource for upstream exchanges.
 *
 * The transaction writes chunks as they arrive; the exchange reads them as the upstream socket
 * takes them. write() returns false while more than `highWaterBytes` wait unread, and onDrain
 * fires once the reader has caught up — so the client's socket is read only as fast as the
 * upstream accepts (STYLE.md "Streams and backpressure").
 *
 * The first `retainBytes` read stay in memory, so a scan whose first endpoint refused the
 * connection, or answered the preview with 503, can start again elsewhere from the first byte.
 * Once a reader has gone past them, the bytes are dropped as they are read and open() returns
 * null: a failure after that point cannot be retried here (the transaction still has the spool).
 */
import type { BodyReader, BodySource } from './body-source.js';

export class LiveBody implements BodySource {
  readonly size = null;
  readonly #retainBytes: number;
  readonly #highWaterBytes: number;
  /** Chunks kept: every one since the start while replayable, else only the unread ones. */
  #chunks: Buffer[] = [];
  /** Offset of #chunks[0] in the body. */
  #base = 0;
  #written = 0;
  /** Offset the current (or last) reader has reached. */
  #readTo = 0;
  #ended = false;
  #failure: Error | null = null;
  #replayable = true;
  #reader: LiveReader | null = null;
  #needDrain = false;
  #drainListeners: (() => void)[] = [];

  constructor(retainBytes: number, highWaterBytes: number) {
    this.#retainBytes = retainBytes;
    this.#highWaterBytes = highWaterBytes;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#written;
  }

  get replayable(): boolean {
    return this.#replayable && this.#failure === null;
  }

  get ended(): boolean {
    return this.#ended;
  }

  write(chunk: Buffer): boolean {
    if (this.#ended || this.#failure !== null) return true;
    if (chunk.length === 0) return !this.#needDrain;
    // Copied: the caller's buffer is a view into a socket read that is reused once we return.
    this.#chunks.push(Buffer.from(chunk));
    this.#written += chunk.length;
    this.#reader?.wake();
    if (this.#written - this.#readTo < this.#highWaterBytes) return true;
    this.#needDrain = true;
    return false;
  }

  onDrain(listener: () => void): void {
    if (!this.#needDrain) queueMicrotask(listener);
    else this.#drainListeners.push(listener);
  }

  end(): void {
    this.#ended = true;
    this.#reader?.wake();
  }

  /** Nothing more will be read (the scan is over or abandoned): readers fail, writers never wait. */
  fail(reason: Error): void {
    if (this.#failure !== null) return;
    this.#failure = reason;
    this.#chunks = [];
    this.#reader?.wake();
    this.#releaseDrain();
  }

  open(): BodyReader | null {
    if (!this.#replayable || this.#failure !== null) return null;
    this.#reader?.close();
    this.#readTo = 0;
    const reader = new LiveReader(this);
    this.#reader = reader;
    return reader;
  }

  // ── for LiveReader ──────────────────────────────────────────────────────────────────────────

  /** The chunk at `offset`, 'wait' for more, or null at the end; throws once failed. */
  take(reader: LiveReader, offset: number): Buffer | null | 'wait' {
    if (this.#failure !== null) throw this.#failure;
    if (reader !== this.#reader) throw new Error('a newer reader replaced this one');
    if (offset >= this.#written) return this.#ended ? null : 'wait';
    let at = this.#base;
    let index = 0;
    while (at + this.#chunks[index]!.length <= offset) at += this.#chunks[index++]!.length;
    const chunk = this.#chunks[index]!.subarray(offset - at);
    this.#readTo = offset + chunk.length;
    if (this.#replayable && this.#readTo > this.#retainBytes) this.#replayable = false;
    if (!this.#replayable) {
      // Past the retained prefix: drop what has been read.
      this.#base = at + this.#chunks[index]!.length;
      this.#chunks = this.#chunks.slice(index + 1);
    }
    if (this.#needDrain && this.#written - this.#readTo < this.#highWaterBytes) this.#releaseDrain();
    return chunk;
  }

  detach(reader: LiveReader): void {
    if (this.#reader === reader) this.#reader = null;
  }

  #releaseDrain(): void {
    this.#needDrain = false;
    const listeners = this.#drainListeners;
    this.#drainListeners = [];
    for (const l of listeners) l();
  }
}

class LiveReader implements BodyReader {
  readonly #body: LiveBody;
  #offset = 0;
  #closed = false;
  #waiter: (() => void) | null = null;

  constructor(body: LiveBody) {
    this.#body = body;
  }

  async next(): Promise<Buffer | null> {
    for (;;) {
      if (this.#closed) return null;
      const got = this.#body.take(this, this.#offset);
      if (got !== 'wait') {
        if (got !== null) this.#offset += got.length;
        return got;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#body.detach(this);
    this.wake();
  }
}
