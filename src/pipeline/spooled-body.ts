import type { Readable } from 'node:stream';

/**
 * A complete request body, held in memory when small and in a temp file when large
 * (DESIGN.md step 4). Readers never get the whole large body as one Buffer.
 */
export interface SpooledBody {
  /** Total bytes written. */
  readonly size: number;
  /**
   * The bytes when the body stayed in memory (≤ the spool's memory threshold), else null. One
   * Buffer: a body kept in several pieces is joined on first use; prefer memoryPieces.
   */
  readonly memory: Buffer | null;
  /** The in-memory bytes as views, in order, without joining them; null when on disk. */
  readonly memoryPieces: readonly Buffer[] | null;
  /** The temp file holding the body when it spilled to disk, else null. */
  readonly path: string | null;
  /** Streams the body (or the byte range [start, end) of it) from memory or disk. */
  createReadStream(start?: number, end?: number): Readable;
  /**
   * The caller wrote a complete copy of this in-memory body to `path`, a file it created: the
   * body takes the file over. Its memory is let go (views already handed out stay valid; nothing
   * is rewritten), later reads come from the file, and the body's owner removes the file with the
   * body. Returns false, and the file stays the caller's, when the body cannot: it is on disk
   * already, was not made by a spool, or was disposed. Why: clamd's `transfer: path` writes such a
   * copy anyway, and a body held in memory until its scan ends outlives two young-generation GCs
   * and fills the old one with buffers (src/backends/clamd/scan-file.ts).
   */
  adoptCopy?(path: string): boolean;
}
