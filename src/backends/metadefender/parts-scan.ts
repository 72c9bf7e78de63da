/**
 * Backend.scanParts for MetaDefender Core (issue 5): the parts of one multipart upload as one
 * batch (batch-scan.ts) on one leased server.
 *
 *   parts ─┬─ empty ─────────────► clean, not sent (§2: Core answers an empty upload with 422)
 *          ├─ over max_file_bytes ► too-large, not sent
 *          └─ the rest ─► lease a server (held for the whole batch) ─► runBatch
 *                              ├─ the open was refused / 503 / unreachable ─► once more on another server
 *                              └─ the server lost the batch (404) ─► opened and uploaded once more there
 *
 * timeout_ms bounds the whole batch (one deadline with the caller's signal and close()).
 */
import { performance } from 'node:perf_hooks';
import type { Backend, BackendResult, PartsBatch, ScanErrorKind, ScanMeta, ScanPart } from '../backend.js';
import { scanDeadline } from '../scan-deadline.js';
import { PoolUnavailableError } from '../pool/endpoint-pool.js';
import { withFailover } from '../pool/failover.js';
import type { PooledEndpoints } from '../pool/pooled-endpoints.js';
import { runBatch, type BatchSettings } from './batch-scan.js';
import { classify, MD_ERROR_CODES } from './core-endpoint.js';
import type { CoreNode } from './core-node.js';
import type { OpenJobs } from './open-jobs.js';

export interface PartsScannerOptions extends BatchSettings {
  /** 0 = no limit. */
  readonly maxFileBytes: number;
}

export function createPartsScanner(
  pool: PooledEndpoints<CoreNode>,
  closing: AbortSignal,
  /** The backend's open jobs: a batch given up is cancelled once, by its run or by close(). */
  jobs: OpenJobs,
  options: PartsScannerOptions,
): NonNullable<Backend['scanParts']> {
  const { backend, timeoutMs } = options;

  return async function scanParts(parts: readonly ScanPart[], meta: ScanMeta, signal: AbortSignal) {
    const started = performance.now();
    const elapsed = (): number => performance.now() - started;
    const fail = (kind: ScanErrorKind, message: string): BackendResult => ({ outcome: 'error', backend, durationMs: elapsed(), kind, message });
    if (signal.aborted) return { results: parts.map(() => fail('backend-error', `scan aborted: ${describeReason(signal.reason)}`)) };
    if (closing.aborted) return { results: parts.map(() => fail('backend-error', 'backend is closed')) };

    const results: (BackendResult | undefined)[] = parts.map((part) => {
      if (part.body.size === 0) return { outcome: 'clean', backend, durationMs: 0 };
      if (options.maxFileBytes > 0 && part.body.size > options.maxFileBytes) {
        return fail('too-large', `part ${part.label}: ${part.body.size} bytes is over max_file_bytes (${options.maxFileBytes}); not uploaded`);
      }
      return undefined;
    });
    const toSend = results.flatMap((r, i) => (r === undefined ? [i] : []));
    if (toSend.length === 0) return { results: results as BackendResult[] };

    // The caller's abort, our timeout or the backend closing, whichever comes first.
    const deadline = scanDeadline(timeoutMs, signal, closing);
    const describe = (err: unknown): { kind: ScanErrorKind; message: string } => {
      if (deadline.timedOut()) return { kind: 'timeout', message: `batch timed out after ${timeoutMs} ms` };
      if (signal.aborted) return { kind: 'backend-error', message: `scan aborted: ${describeReason(signal.reason)}` };
      if (closing.aborted) return { kind: 'backend-error', message: 'backend closed during the scan' };
      if (err instanceof PoolUnavailableError) {
        return { kind: err.kind === 'overloaded' ? 'overloaded' : 'unreachable', message: `no MetaDefender endpoint available: ${err.message}` };
      }
      const e = classify(err, deadline.signal);
      return { kind: e.code === MD_ERROR_CODES.unreachable ? 'unreachable' : 'backend-error', message: e.message };
    };

    let sent: { results: readonly BackendResult[]; batch?: PartsBatch };
    try {
      sent = await withFailover(pool, deadline.signal, async (lease) => {
        const run = await runBatch(
          { core: lease.resource.core, endpoint: lease.endpoint, parts: toSend.map((i) => parts[i]!), meta, signal: deadline.signal, elapsed, describe, jobs },
          options,
        );
        // A batch that failed fails every part with the same text: the first tells the pool why.
        const failed = run.results.find((r): r is Extract<BackendResult, { outcome: 'error' }> => r.outcome === 'error');
        return { value: run, outcome: run.health, retry: run.retry, ...(failed !== undefined && { detail: failed.message }) };
      });
    } catch (err) {
      // No server could be leased (none usable, queue full) or the wait was cut short.
      const { kind, message } = describe(err);
      sent = { results: toSend.map(() => fail(kind, message)) };
    } finally {
      deadline.clear();
    }
    toSend.forEach((partIndex, k) => {
      results[partIndex] = sent.results[k] ?? fail('backend-error', 'no result for this part (a bug in icap-bridge)');
    });
    return { results: results as BackendResult[], ...(sent.batch !== undefined && { batch: sent.batch }) };
  };
}

function describeReason(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
