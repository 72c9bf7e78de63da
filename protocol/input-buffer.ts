/**
 * The unconsumed input of an incremental decoder (STYLE.md "Cursor, not copies"): a chunk is
 * copied only when unread bytes are still waiting in front of it, and consumed bytes are dropped
 * by keeping a view of the rest, so a fully read socket buffer is released at once.
 *
 * Header blocks are parsed as latin1 text (every byte one character). The text of the first bytes
 * is kept beside them (latin1()), so the ICAP head and the encapsulated HTTP heads behind it, which
 * usually come in one socket read, are decoded once and searched as a string.
 */
const EMPTY = Buffer.alloc(0);

export class InputBuffer {
  #bytes: Buffer = EMPTY;
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
    this.#bytes = this.#bytes.length === 0 ? chunk : Buffer.concat([this.#bytes, chunk]);
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
    this.#text = '';
  }
}
