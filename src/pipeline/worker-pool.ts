/**
 * The one place that knows about piscina (STYLE.md, "Treat the worker pool as a consumer too"):
 * the rest of the code sees a typed run(), a bounded queue and coded errors.
 *
 * Why the queue bound is counted here and not left to piscina's `maxQueue`: piscina 5 parks a
 * task that carries an AbortSignal in an unbounded "skip queue" when no thread is free, and
 * `maxQueue` only limits the other queue. Every scan carries a signal, so piscina alone would
 * never refuse one. It also reports a full queue only through message text.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { CodedError, type ErrorCode } from '../errors.js';
import { workerExecArgv } from './worker-module.js';

export { resolveWorkerFile } from './worker-module.js';

export const POOL_ERROR_CODES = {
  /** More tasks than threads + maxQueue; the scan outcome is error kind 'overloaded'. */
  queueFull: 'ICAP_ERR_POOL_QUEUE_FULL',
  /** The caller's signal fired before the task finished; a running worker is terminated. */
  aborted: 'ICAP_ERR_POOL_ABORTED',
  /** run() after destroy(), or the pool was destroyed while the task waited or ran. */
  closed: 'ICAP_ERR_POOL_CLOSED',
  /** The task module threw, or its thread died; the original error is the `cause`. */
  taskFailed: 'ICAP_ERR_POOL_TASK_FAILED',
} as const satisfies Record<string, ErrorCode>;
export type PoolErrorCode = (typeof POOL_ERROR_CODES)[keyof typeof POOL_ERROR_CODES];

export class PoolError extends CodedError<PoolErrorCode> {}

type PiscinaRunOptions = NonNullable<Parameters<Piscina['run']>[1]>;
/** What may be moved to the worker without a copy (ArrayBuffer, MessagePort, ...). */
export type TransferList = NonNullable<PiscinaRunOptions['transferList']>;

export interface WorkerPoolOptions {
  /**
   * Absolute path or file: URL of the task module (its default export runs each task). Build it
   * with resolveWorkerFile() so a `.ts` module is used under tsx/vitest and `.js` from dist/.
   */
  filename: string | URL;
  /** Worker threads, all started up front; 0 = os.availableParallelism(). */
  threads: number;
  /** Tasks that may wait for a free thread; the next one is refused with ICAP_ERR_POOL_QUEUE_FULL. */
  maxQueue: number;
  /** Cloned into every worker (piscina's workerData). */
  workerData?: unknown;
  /** Errors not tied to a task (a worker failing while idle). Without it they are dropped. */
  onError?: (err: Error) => void;
}

export interface RunOptions {
  /** Aborting rejects with ICAP_ERR_POOL_ABORTED and terminates the worker if it already runs. */
  signal?: AbortSignal;
  /** Moved, not copied, to the worker; the caller must not touch these afterwards. */
  transferList?: TransferList;
}

export interface WorkerPool {
  run<TIn, TOut>(task: TIn, opts?: RunOptions): Promise<TOut>;
  readonly threads: number;
  /** Tasks waiting for a thread. */
  readonly queueSize: number;
  /** Share of thread time spent on tasks since the pool started, 0..1 (piscina's figure). */
  readonly utilization: number;
  /** Terminates the threads; pending and later run() calls reject with ICAP_ERR_POOL_CLOSED. */
  destroy(): Promise<void>;
}

export function createWorkerPool(options: WorkerPoolOptions): WorkerPool {
  const threads = options.threads === 0 ? availableParallelism() : options.threads;
  if (!Number.isSafeInteger(threads) || threads < 1) throw new RangeError(`threads must be ≥ 0, got ${options.threads}`);
  if (!Number.isSafeInteger(options.maxQueue) || options.maxQueue < 0) {
    throw new RangeError(`maxQueue must be a non-negative integer, got ${options.maxQueue}`);
  }
  const filename = typeof options.filename === 'string' ? options.filename : fileURLToPath(options.filename);
  const piscina = new Piscina({
    filename,
    minThreads: threads,
    maxThreads: threads,
    // The bound is enforced in run(); see the file comment.
    maxQueue: Number.MAX_SAFE_INTEGER,
    execArgv: workerExecArgv(filename),
    workerData: options.workerData,
  });
  // An 'error' event without a listener would crash the process.
  piscina.on('error', (err: Error) => options.onError?.(err));

  const capacity = threads + options.maxQueue;
  let outstanding = 0;
  let destroyed = false;
  let destroying: Promise<void> | null = null;

  async function run<TIn, TOut>(task: TIn, opts: RunOptions = {}): Promise<TOut> {
    if (destroyed) throw new PoolError(POOL_ERROR_CODES.closed, 'worker pool is destroyed');
    const { signal, transferList } = opts;
    if (signal?.aborted) throw abortedError(signal);
    if (outstanding >= capacity) {
      throw new PoolError(POOL_ERROR_CODES.queueFull, `worker pool queue is full (${threads} threads, ${options.maxQueue} queued)`);
    }
    outstanding++;
    try {
      return (await piscina.run(task, { signal: signal ?? null, transferList })) as TOut;
    } catch (err) {
      if (signal?.aborted) throw abortedError(signal);
      if (destroyed) throw new PoolError(POOL_ERROR_CODES.closed, 'worker pool was destroyed', { cause: err });
      throw new PoolError(POOL_ERROR_CODES.taskFailed, `worker task failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    } finally {
      outstanding--;
    }
  }

  return {
    run,
    threads,
    get queueSize() {
      return piscina.queueSize;
    },
    get utilization() {
      return piscina.utilization;
    },
    destroy() {
      destroyed = true;
      destroying ??= piscina.destroy();
      return destroying;
    },
  };
}

function abortedError(signal: AbortSignal): PoolError {
  return new PoolError(POOL_ERROR_CODES.aborted, 'worker task aborted', { cause: signal.reason });
}
