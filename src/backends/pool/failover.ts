/**
 * One retry on another endpoint (DESIGN.md: "retries a failed scan once on another endpoint")
 * after a connect failure, a 503 or a timeout. The attempt says whether its failure may be
 * retried: a scan that already streamed bytes it cannot replay must say no.
 */
import type { AcquireOptions, Lease, LeaseOutcome } from './endpoint-pool.js';

export interface AttemptResult<T> {
  readonly value: T;
  /** How the endpoint behaved, for passive health. */
  readonly outcome: LeaseOutcome;
  /** This failure may be tried again elsewhere. */
  readonly retry: boolean;
  /** What went wrong, for the pool's health report should this attempt eject the endpoint. */
  readonly detail?: string;
}

/** Anything that leases endpoints: an EndpointPool, or PooledEndpoints with its richer leases. */
export interface LeaseSource<L extends Lease> {
  acquire(options: AcquireOptions): Promise<L>;
}

export async function withFailover<T, L extends Lease = Lease>(
  pool: LeaseSource<L>,
  signal: AbortSignal | undefined,
  attempt: (lease: L, attemptIndex: number) => Promise<AttemptResult<T>>,
): Promise<T> {
  const tried = new Set<string>();
  let last: AttemptResult<T> | undefined;
  for (let i = 0; i < 2; i++) {
    let lease: L;
    try {
      lease = await pool.acquire({ exclude: tried, ...(signal && { signal }) });
    } catch (err) {
      // Nothing left to retry on: the first attempt's answer stands, else the pool's reason.
      if (last !== undefined) return last.value;
      throw err;
    }
    tried.add(lease.endpoint);
    try {
      last = await attempt(lease, i);
    } catch (err) {
      lease.release('failure', err instanceof Error ? err.message : String(err));
      throw err;
    }
    lease.release(last.outcome, last.detail);
    if (!last.retry || signal?.aborted) return last.value;
  }
  return last!.value;
}
