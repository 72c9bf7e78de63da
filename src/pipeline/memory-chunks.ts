/**
 * The in-memory part of a body spool: the bytes as a list of Buffers instead of one buffer grown
 * by copying.
 *
 * Large pieces (≥ RETAIN_MIN_BYTES) are kept as the views the caller passed (subarrays of the
 * Buffers Node handed to a socket's 'data' listener, which Node never reuses; STYLE.md "Cursor,
 * not copies"). Copying them cost a second allocation and copy of the body's size (external
 * memory, which also brings V8's next full GC closer): at 1 MiB bodies via clamd, 3.65 → 3.0–3.1 ms
 * CPU per request without it (BENCHMARKS.md, Session 4).
 *
 * Small pieces are copied into blocks of our own: holding a view of every tiny chunked-encoding
 * piece would keep one Buffer object per piece alive, and could pin whole socket reads for a few
 * bytes each. A view of at least RETAIN_MIN_BYTES pins at most its socket read (≤ 64 KiB), or the
 * decoder's join of a read with bytes that were waiting before it (protocol/input-buffer.ts: the
 * two, and room for as much again as was waiting), and a connection's reads hold little but its
 * body, so what stays alive is about the body's size.
 *
 * Bytes once appended are never rewritten, so views handed out (slices) stay valid.
 */

/**
 * Pieces at least this large are kept by reference. 4 KiB and not the block size: a small body
 * often arrives as one piece (a 4 KiB RESPMOD body does), and copying it into a fresh 16 KiB block
 * was an allocation and a copy per request: RESPMOD 4 KiB at 16 connections went from 21.6–22.6 to
 * 19.0–19.5 µs of JavaScript per request (bench/hot-path.ts, 3 pairs, BENCHMARKS.md Session 8).
 * Node hands each socket read over in a buffer of the read's own size, so a view pins no more.
 */
export const RETAIN_MIN_BYTES = 4 * 1024;
/** Size of the blocks small pieces are copied into. */
const BLOCK_BYTES = 16 * 1024;

export class MemoryChunks {
  /** Sealed pieces, in order. */
  readonly #pieces: Buffer[] = [];
  /** Block receiving small pieces; bytes [#blockSealed, #blockUsed) are not in #pieces yet. */
  #block: Buffer | null = null;
  #blockSealed = 0;
  #blockUsed = 0;
  #size = 0;
  #joined: Buffer | null = null;

  get size(): number {
    return this.#size;
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#joined = null;
    this.#size += chunk.length;
    if (chunk.length >= RETAIN_MIN_BYTES) {
      this.#sealBlock();
      this.#pieces.push(chunk);
      return;
    }
    if (this.#block === null || this.#block.length - this.#blockUsed < chunk.length) {
      this.#sealBlock();
      this.#block = Buffer.allocUnsafe(BLOCK_BYTES);
      this.#blockSealed = 0;
      this.#blockUsed = 0;
    }
    chunk.copy(this.#block, this.#blockUsed);
    this.#blockUsed += chunk.length;
  }

  /** Every byte so far as views, in order (no copy). */
  pieces(): readonly Buffer[] {
    this.#sealBlock();
    return this.#pieces;
  }

  /** The bytes as one Buffer: the piece itself when there is one, else joined once and kept. */
  toBuffer(): Buffer {
    const pieces = this.pieces();
    if (pieces.length === 1) return pieces[0]!;
    this.#joined ??= Buffer.concat(pieces, this.#size);
    return this.#joined;
  }

  /** Views of [start, end), in pieces of at most `maxPiece` bytes. */
  *slice(start: number, end: number, maxPiece: number): Generator<Buffer> {
    let offset = 0;
    for (const piece of this.pieces()) {
      const pieceEnd = offset + piece.length;
      if (pieceEnd > start && offset < end) {
        const from = Math.max(start, offset) - offset;
        const to = Math.min(end, pieceEnd) - offset;
        for (let at = from; at < to; at += maxPiece) yield piece.subarray(at, Math.min(at + maxPiece, to));
      }
      if (pieceEnd >= end) return;
      offset = pieceEnd;
    }
  }

  /** Moves the block's unsealed bytes into #pieces; later small pieces go after them. */
  #sealBlock(): void {
    if (this.#block === null || this.#blockUsed === this.#blockSealed) return;
    this.#pieces.push(this.#block.subarray(this.#blockSealed, this.#blockUsed));
    this.#blockSealed = this.#blockUsed;
  }
}
