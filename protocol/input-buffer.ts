/**
 * The unconsumed input of an incremental decoder (STYLE.md "Cursor, not copies"): a chunk is
 * copied only when unread bytes are still waiting in front of it, and consumed bytes are dropped
 * by keeping a view of the rest, so a fully read socket buffer is released at once.
 */
const EMPTY = Buffer.alloc(0);

export class InputBuffer {
  #bytes: Buffer = EMPTY;

  /** The unread bytes; a view valid until the next append() or consume(). */
  get bytes(): Buffer {
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  append(chunk: Buffer): void {
    this.#bytes = this.#bytes.length === 0 ? chunk : Buffer.concat([this.#bytes, chunk]);
  }

  consume(n: number): void {
    this.#bytes = n >= this.#bytes.length ? EMPTY : this.#bytes.subarray(n);
  }

  clear(): void {
    this.#bytes = EMPTY;
  }
}
