/**
 * piscina task module of the embedded engine: one pass over the body computing its SHA-256 (only
 * when hash lists are loaded: nothing else uses it) and looking for the EICAR test string. Matching
 * the hash against hash lists happens in the main thread (builtin-backend.ts), so workers hold no
 * copy of the lists.
 *
 * A file-backed body is read in 64 KiB pieces into one reused buffer: memory per task stays
 * constant whatever the body size. Stopping a scan (timeout, abort) is done by piscina
 * terminating this thread, so there is no cancellation code here.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { EicarMatcher } from './eicar.js';

export interface ScanTask {
  /** The whole body, when it stayed in memory (a copy moved to this thread). */
  memory?: Uint8Array;
  /** The spool's temp file, when the body spilled to disk. */
  path?: string;
  /** Body length; a file shorter than this is an error (it was truncated under us). */
  size: number;
  /** Compute the SHA-256 (the backend has hash lists to match it against). */
  hash: boolean;
  /** Look for the EICAR test string. */
  eicar: boolean;
}

export interface ScanTaskResult {
  /** Absent when the task did not ask for it. */
  sha256?: string;
  eicar: boolean;
}

/** What to look for; the same for the inline path and the workers. */
export interface ScanWanted {
  readonly hash: boolean;
  readonly eicar: boolean;
}

const READ_BYTES = 64 * 1024;

/** One pass over bytes already in memory; also used on the event loop for small bodies. */
export function scanBytes(bytes: Uint8Array, wanted: ScanWanted): ScanTaskResult {
  let eicar = false;
  if (wanted.eicar) {
    const matcher = new EicarMatcher();
    matcher.push(bytes);
    eicar = matcher.found;
  }
  return wanted.hash ? { sha256: createHash('sha256').update(bytes).digest('hex'), eicar } : { eicar };
}

export default async function scan(task: ScanTask): Promise<ScanTaskResult> {
  const hash = task.hash ? createHash('sha256') : null;
  const eicar = task.eicar ? new EicarMatcher() : null;
  const consume = (chunk: Uint8Array): void => {
    hash?.update(chunk);
    eicar?.push(chunk);
  };
  if (task.memory) {
    if (task.memory.length !== task.size) throw new Error(`body is ${task.memory.length} bytes, expected ${task.size}`);
    consume(task.memory);
  } else if (task.path !== undefined) {
    await readFileInPieces(task.path, task.size, consume);
  } else if (task.size !== 0) {
    throw new Error('scan task has neither memory nor path');
  }
  const found = eicar?.found ?? false;
  return hash !== null ? { sha256: hash.digest('hex'), eicar: found } : { eicar: found };
}

async function readFileInPieces(path: string, size: number, consume: (chunk: Uint8Array) => void): Promise<void> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(size, 1)));
    let position = 0;
    while (position < size) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - position), position);
      if (bytesRead === 0) throw new Error(`${path}: ended at ${position} of ${size} bytes`);
      consume(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await file.close();
  }
}
