/**
 * One retry on another endpoint (DESIGN.md: "retries a failed scan once on another endpoint")
 * after a connect failure, a 503 or a timeout. The attempt says whether its failure may be
 * retried: a scan that already streamed bytes it cannot replay must say no.
 */
import { EndpointPool, type Lease } from './endpoint-pool.js';

export interface AttemptResult<T> {
  readonly value: T;
  /** How the endpoint behaved, for passive health. */
  readonly outcome: 'ok' | 'failure' | 'neutral';
  /** This failure may be tried again elsewhere. */
  readonly retry: boolean;
}

export async function withFailover<T>(
  pool: EndpointPool,
  signal: AbortSignal | undefined,
  attempt: (lease: Lease) => Promise<AttemptResult<T>>,
): Promise<T> {
  const tried = new Set<string>();
  let last: AttemptResult<T> | undefined;
  for (let i = 0; i < 2; i++) {
    let lease: Lease;
    try {
      lease = await pool.acquire({ exclude: tried, ...(signal && { signal }) });
    } catch (err) {
      // Nothing left to retry on: the first attempt's answer stands, else the pool's reason.
      if (last !== undefined) return last.value;
      throw err;
    }
    tried.add(lease.endpoint);
    try {
      last = await attempt(lease);
    } catch (err) {
      lease.release('failure');
      throw err;
    }
    lease.release(last.outcome);
    if (!last.retry || signal?.aborted) return last.value;
  }
  return last!.value;
}
