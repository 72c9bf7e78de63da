/**
 * The file clamd reads for `transfer: path` (zSCAN <path>):
 *  - a body the spool spilled to disk: the spool's own temp file, as it is;
 *  - a body held in memory: a private copy written into spool.directory. A spool's body adopts it
 *    (SpooledBody.adoptCopy): the body lets its memory go, is read from the copy from then on, and
 *    the spool removes the copy with the body. A 1 MiB body held in memory until clamd had
 *    scanned it could outlive two young-generation GCs, and its promoted socket buffers brought
 *    V8's next full GC closer (1 MiB at 16 connections: 2.9–3.5 → 2.0–2.6 ms of CPU per request,
 *    BENCHMARKS.md, Session 7). A body that cannot
 *    adopt (not from a spool) keeps the copy private to this scan: dispose() removes it whatever
 *    happens (the caller calls it in a finally).
 *
 * The copy is created like the spool's files ('wx': never through an existing name or a planted
 * symlink, random name) but with mode 0640 instead of 0600: a clamd that is not the bridge's
 * user can read it through the group (put the spool directory in clamd's group and make it
 * setgid, so new files inherit that group). Nobody outside that group can read it, and the
 * file lives only as long as its transaction (adopted by the spool) or its scan (not adopted).
 * The spool's spilled files stay 0600 (src/pipeline/spool.ts):
 * for those a clamd of another user answers "Access denied" and the body goes by INSTREAM.
 */
import { lstat, open, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import { randomFileName } from '../../pipeline/temp-name.js';

export const SCAN_FILE_MODE = 0o640;

export interface ScanFile {
  /** Absolute path, as clamd must get it. */
  readonly path: string;
  /** Removes the file when it is ours; idempotent, never rejects. */
  dispose(): Promise<void>;
}

export type ScanFileResult = { readonly ok: true; readonly file: ScanFile } | { readonly ok: false; readonly reason: string };

// Per-scan copies that exist now (created, not yet unlinked): tests check none is left behind.
const livePaths = new Set<string>();

export function liveScanFiles(): ReadonlySet<string> {
  return livePaths;
}

const KEEP: ScanFile['dispose'] = () => Promise.resolve();

/** The file for `body`, or why there is none (the caller then sends the bytes by INSTREAM). */
export async function openScanFile(body: SpooledBody, directory: string, signal: AbortSignal): Promise<ScanFileResult> {
  if (body.path !== null) return checkSpoolFile(resolve(body.path), body.size);
  // The pieces as the spool holds them, written with one writev(2): joining them first would
  // allocate and copy the body once more.
  const pieces = body.memoryPieces ?? [];
  const path = resolve(directory, randomFileName('icap-bridge-', '.scan'));
  livePaths.add(path);
  let created = false;
  const dispose = async (): Promise<void> => {
    if (!livePaths.has(path)) return;
    try {
      if (created) await unlink(path);
      livePaths.delete(path);
    } catch (err) {
      // Anything but "already gone" leaves the path listed, so tests and operators see it.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') livePaths.delete(path);
    }
  };
  try {
    // 'wx' fails on EEXIST before creating anything: only then is the name not ours.
    const handle = await open(path, 'wx', SCAN_FILE_MODE);
    created = true;
    try {
      signal.throwIfAborted();
      const { bytesWritten } = await handle.writev(pieces as Buffer[]);
      if (bytesWritten !== body.size) throw new Error(`wrote ${bytesWritten} of ${body.size} bytes`);
    } finally {
      await handle.close();
    }
    if (body.adoptCopy?.(path) === true) {
      // The spool's file now (listed among its live files until its dispose).
      livePaths.delete(path);
      return { ok: true, file: { path, dispose: KEEP } };
    }
    return { ok: true, file: { path, dispose } };
  } catch (err) {
    await dispose();
    return { ok: false, reason: `cannot write a file for clamd in ${directory}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * clamd answers `OK` for a symbolic link it does not follow (FollowFileSymlinks no) without
 * scanning anything, so the path must name the regular file holding exactly this body.
 */
async function checkSpoolFile(path: string, size: number): Promise<ScanFileResult> {
  try {
    const stat = await lstat(path);
    if (!stat.isFile()) return { ok: false, reason: `spool file ${path} is not a regular file` };
    if (stat.size !== size) return { ok: false, reason: `spool file ${path} holds ${stat.size} bytes, the body ${size}` };
    return { ok: true, file: { path, dispose: KEEP } };
  } catch (err) {
    return { ok: false, reason: `spool file ${path}: ${err instanceof Error ? err.message : String(err)}` };
  }
}
