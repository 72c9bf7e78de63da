/**
 * Each worker spools into its own subdirectory of spool.directory, named after its pid. The spool
 * module's bookkeeping (liveSpoolFiles, spoolBytesOnDisk) is per process, so a worker that dies
 * (SIGKILL, OOM) cannot remove its temp files and nobody else knows their names; with one
 * directory per worker the primary removes the whole directory once that worker has exited.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export function workerSpoolDirectory(spoolDirectory: string, pid: number): string {
  return join(spoolDirectory, `icap-bridge-worker-${pid}`);
}

/** Creates (mode 0700) the worker's directory under `spoolDirectory`; a leftover of an earlier process with this pid is removed first. */
export function createWorkerSpoolDirectory(spoolDirectory: string, pid: number): string {
  const dir = workerSpoolDirectory(spoolDirectory, pid);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/** Removes the directory of worker `pid` and whatever it still holds; only call once that process is gone. */
export function removeWorkerSpoolDirectory(spoolDirectory: string, pid: number): void {
  try {
    rmSync(workerSpoolDirectory(spoolDirectory, pid), { recursive: true, force: true });
  } catch {
    // Unreadable or busy: nothing more we can do; the next start with this pid removes it.
  }
}
