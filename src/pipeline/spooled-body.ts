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
}
