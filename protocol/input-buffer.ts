/**
 * The unconsumed input of an incremental decoder (STYLE.md "Cursor, not copies"): a chunk is
 * copied only when unread bytes are still waiting in front of it, and consumed bytes are dropped
 * by keeping a view of the rest, so a fully read socket buffer is released at once.
 *
 * Header blocks are parsed as latin1 text (every byte one character). The text of the first bytes
 * is kept beside them (latin1()), so the ICAP head and the encapsulated HTTP heads behind it, which
 * usually come in one socket read, are decoded once and searched as a string.
 *
 * Chunks joined to unread bytes go into memory of this buffer's own with room behind them, grown by
 * the size of what was waiting: a head that arrives a byte per read costs O(n) to gather. Joining
 * by Buffer.concat at every arrival cost O(n²): ~2 GB of copying for a 64 KiB head sent a byte at
 * a time, from one slow client.
 */
const EMPTY = Buffer.alloc(0);

/** Room left behind the joined bytes, at least: a few small arrivals fit before the next copy. */
const MIN_SPARE_BYTES = 256;

export class InputBuffer {
  #bytes: Buffer = EMPTY;
  /**
   * The memory #bytes is a view of when chunks were joined, with room behind it; null while #bytes
   * is a chunk as it came (or nothing). Only the room behind #bytes is ever written: bytes before it
   * were consumed, and views of them handed out (a body's data) must stay as they were.
   */
  #store: Buffer | null = null;
  /** latin1 text of bytes[0, text.length): decoded once, sliced as bytes are consumed. */
  #text = '';

  /** The unread bytes; a view valid until the next append() or consume(). */
  get bytes(): Buffer {
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  /** The first `n` unread bytes (n ≤ length) as latin1 text; only bytes not decoded yet are decoded. */
  latin1(n: number): string {
    const known = this.#text.length;
    if (n > known) this.#text += this.#bytes.toString('latin1', known, n);
    return n === this.#text.length ? this.#text : this.#text.slice(0, n);
  }

  append(chunk: Buffer): void {
    const pending = this.#bytes;
    if (pending.length === 0) {
      this.#bytes = chunk;
      this.#store = null;
      return;
    }
    const length = pending.length + chunk.length;
    const store = this.#store;
    if (store !== null) {
      const start = pending.byteOffset - store.byteOffset;
      if (start + length <= store.length) {
        chunk.copy(store, start + pending.length);
        this.#bytes = store.subarray(start, start + length);
        return;
      }
    }
    // Room for as much again as was waiting: a large read behind a few waiting bytes (a chunk-size
    // line split by the read) gets little more than its own size, a growing head doubles.
    const grown = Buffer.allocUnsafe(length + Math.max(pending.length, MIN_SPARE_BYTES));
    pending.copy(grown, 0);
    chunk.copy(grown, pending.length);
    this.#store = grown;
    this.#bytes = grown.subarray(0, length);
  }

  consume(n: number): void {
    if (n >= this.#bytes.length) {
      this.clear();
      return;
    }
    this.#bytes = this.#bytes.subarray(n);
    this.#text = n >= this.#text.length ? '' : this.#text.slice(n);
  }

  clear(): void {
    this.#bytes = EMPTY;
    this.#store = null;
    this.#text = '';
  }
}
