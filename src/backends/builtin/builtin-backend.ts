/**
 * The embedded engine (DESIGN.md, "Backends and pools"): EICAR test file and SHA-256 hash lists.
 * A body in memory up to `inline_max_bytes` is scanned on the event loop (scanNow); anything
 * larger in a worker pool, so hashing a large body never blocks the event loop.
 *
 *   scanNow(body) ─► scanBytes on this thread (small, in memory) ─────────────┐
 *   scan(body) ─► pool.run({ memory copy | path, size }) ─► worker: sha256 (with hash lists) + EICAR search
 *              ◄─ { sha256, eicar } ◄────────────────────────┘                 │
 *   main thread: hash-list lookup ◄──────────────────────────────────────────┘ ─► BackendResult
 */
import { performance } from 'node:perf_hooks';
import type { Backend, BackendResult, ScanErrorKind, ScanMeta } from '../backend.js';
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import { createWorkerPool, POOL_ERROR_CODES, PoolError, resolveWorkerFile, type TransferList } from '../../pipeline/worker-pool.js';
import { EICAR_THREAT_NAME } from './eicar.js';
import { loadHashLists } from './hash-list.js';
import { scanDeadline } from '../scan-deadline.js';
import { scanBytes, type ScanTask, type ScanTaskResult, type ScanWanted } from './scan-worker.js';

export const BUILTIN_ENGINE_VERSION = '0.1.0';

export interface BuiltinBackendOptions {
  name: string;
  /** Worker threads; 0 = os.availableParallelism(). */
  workers: number;
  /** In-memory bodies up to this size are scanned on the calling thread (0 = never). */
  inlineMaxBytes?: number;
  /** Whole scan, queue wait included. */
  timeoutMs: number;
  /** Report the EICAR test string as infected. */
  eicar: boolean;
  /** Hash-list files, loaded once here; a reload builds a new backend. */
  hashLists: readonly string[];
  /**
   * Scans that may wait for a free worker before further ones are refused as 'overloaded'.
   * A waiting in-memory body holds a copy of up to the spool's memory threshold. Default 64.
   */
  maxQueue?: number;
}

const DEFAULT_MAX_QUEUE = 64;

/** A clean or infected BackendResult while it is being filled in. */
type Verdict =
  | { outcome: 'clean'; backend: string; durationMs: number; sha256?: string; endpoint?: string }
  | { outcome: 'infected'; backend: string; durationMs: number; threats: string[]; sha256?: string; endpoint?: string };

export async function createBuiltinBackend(options: BuiltinBackendOptions): Promise<Backend> {
  const { name, timeoutMs } = options;
  // Load before starting threads: a bad list fails without leaving a pool behind.
  const lists = await loadHashLists(options.hashLists);
  const pool = createWorkerPool({
    filename: resolveWorkerFile(import.meta.url, './scan-worker.js'),
    threads: options.workers,
    maxQueue: options.maxQueue ?? DEFAULT_MAX_QUEUE,
  });
  const version = `builtin/${BUILTIN_ENGINE_VERSION} eicar=${options.eicar ? 'on' : 'off'} hashes=${lists.hashes.size}:${lists.fingerprint}`;

  // Without hash lists the SHA-256 would be computed for nothing: no other code reads it.
  const wanted: ScanWanted = { hash: lists.hashes.size > 0, eicar: options.eicar };

  let inFlight = 0;
  let closed = false;
  const inlineMaxBytes = options.inlineMaxBytes ?? 0;

  /** The verdict on this thread for a small in-memory body; undefined = the worker pool's job. */
  function scanNow(body: SpooledBody): BackendResult | undefined {
    // Small and in memory: one synchronous pass here costs less than posting to a worker and
    // waking it (that hand-off was the largest single cost of a 4 KiB RESPMOD).
    if (body.memory === null || body.size > inlineMaxBytes || closed) return undefined;
    const started = performance.now();
    return verdict(scanBytes(body.memory, wanted), performance.now() - started, 'inline');
  }

  async function scan(body: SpooledBody, _meta: ScanMeta, signal: AbortSignal): Promise<BackendResult> {
    inFlight++;
    try {
      return await scanOnce(body, signal);
    } finally {
      inFlight--;
    }
  }

  /** Hash-list lookup and the result, the same for both paths. */
  function verdict(result: ScanTaskResult, durationMs: number, endpoint: 'inline' | 'worker-pool'): BackendResult {
    const threats: string[] = [];
    if (options.eicar && result.eicar) threats.push(EICAR_THREAT_NAME);
    const { sha256 } = result;
    const listed = sha256 !== undefined ? lists.hashes.get(sha256) : undefined;
    if (listed !== undefined) threats.push(listed);
    // Fields set one by one rather than spread in: this runs for every scan.
    const found: Verdict = threats.length > 0 ? { outcome: 'infected', backend: name, durationMs, threats } : { outcome: 'clean', backend: name, durationMs };
    if (sha256 !== undefined) found.sha256 = sha256;
    found.endpoint = endpoint;
    return found;
  }

  async function scanOnce(body: SpooledBody, signal: AbortSignal): Promise<BackendResult> {
    const started = performance.now();
    if (signal.aborted) {
      return { outcome: 'error', backend: name, durationMs: 0, kind: 'backend-error', message: `scan aborted: ${describe(signal.reason)}` };
    }
    // scan() is also called directly (multipart parts: scan-parts.ts), so it answers small bodies inline too.
    const now = scanNow(body);
    if (now !== undefined) return now;
    const elapsed = (): number => performance.now() - started;
    const fail = (kind: ScanErrorKind, message: string): BackendResult => ({
      outcome: 'error',
      backend: name,
      durationMs: elapsed(),
      kind,
      message,
    });

    // One signal for the pool: the caller's abort or our own timeout, whichever comes first.
    const deadline = scanDeadline(timeoutMs, signal);

    try {
      const { task, transferList } = taskFor(body, wanted);
      const result = await pool.run<ScanTask, ScanTaskResult>(task, { signal: deadline.signal, transferList });
      return verdict(result, elapsed(), 'worker-pool');
    } catch (err) {
      if (deadline.timedOut()) return fail('timeout', `scan timed out after ${timeoutMs} ms`);
      if (err instanceof PoolError) {
        switch (err.code) {
          case POOL_ERROR_CODES.queueFull:
            return fail('overloaded', err.message);
          case POOL_ERROR_CODES.aborted:
            return fail('backend-error', `scan aborted: ${describe(signal.reason)}`);
          case POOL_ERROR_CODES.closed:
          case POOL_ERROR_CODES.taskFailed:
            return fail('backend-error', err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message);
        }
      }
      return fail('backend-error', describe(err));
    } finally {
      deadline.clear();
    }
  }

  return {
    name,
    version,
    scan,
    scanNow,
    status: () => [
      {
        endpoint: 'worker-pool',
        healthy: !closed,
        inFlight: Math.min(inFlight, pool.threads),
        queued: Math.max(0, inFlight - pool.threads),
      },
    ],
    close: () => {
      closed = true;
      return pool.destroy();
    },
  };
}

/**
 * The task and its transfer list. A memory body goes over as a fresh copy whose ArrayBuffer is
 * moved: the caller still owns body.memory (it may echo it back to the client), and a Buffer
 * can be a view into Node's shared allocation pool, which must never be transferred.
 */
function taskFor(body: SpooledBody, wanted: ScanWanted): { task: ScanTask; transferList?: TransferList } {
  if (body.memory) {
    const copy = new Uint8Array(body.memory.length);
    copy.set(body.memory);
    return { task: { memory: copy, size: body.size, ...wanted }, transferList: [copy.buffer] };
  }
  if (body.path !== null) return { task: { path: body.path, size: body.size, ...wanted } };
  return { task: { size: 0, ...wanted } };
}

function describe(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
