/**
 * Runs every backend of a service on one complete body, in parallel (DESIGN.md step 5). Each
 * backend applies its own timeout; the transaction's signal cancels them all when the client
 * goes away. Backends never reject, but a broken one is still turned into an error result so one
 * bad engine cannot make a body pass unscanned.
 */
import type { Backend, BackendResult, ScanMeta } from '../backends/backend.js';
import type { SpooledBody } from './spooled-body.js';

export async function runScans(
  backends: readonly Backend[],
  body: SpooledBody,
  meta: ScanMeta,
  signal: AbortSignal,
): Promise<BackendResult[]> {
  return Promise.all(
    backends.map(async (backend): Promise<BackendResult> => {
      const started = performance.now();
      try {
        return await backend.scan(body, meta, signal);
      } catch (err) {
        return {
          outcome: 'error',
          backend: backend.name,
          kind: 'backend-error',
          message: err instanceof Error ? err.message : String(err),
          durationMs: performance.now() - started,
        };
      }
    }),
  );
}
