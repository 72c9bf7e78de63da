/**
 * Runs every backend of a service on one complete body, in parallel (DESIGN.md step 5). Each
 * backend applies its own timeout; the transaction's signal cancels them all when the client
 * goes away. Backends never reject, but a broken one is still turned into an error result so one
 * bad engine cannot make a body pass unscanned.
 *
 * A stream that lost its endpoint mid-body (marked `retryable`: connection lost, no connection,
 * clamd's queue-full silence) cannot replay itself, but the spool holds the whole body by now:
 * that backend scans the spool once more, on whichever endpoint its pool picks, so one dead
 * clamd costs no transaction while another lives. A verdict, a timeout of the whole scan or a
 * too-large body is never re-run.
 */
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../backends/backend.js';
import type { SpooledBody } from './spooled-body.js';

/** No scan was fed while the body arrived: one shared empty map, not one per call. */
export const NO_STREAMS: ReadonlyMap<Backend, StreamingScan> = new Map();

/**
 * `streams` holds the scans that were fed while the body arrived; they only need end(). The
 * other backends scan the complete spooled body now: at once when they can (Backend.scanNow),
 * else through scan(). `meta` and `signal` are asked for only when a backend needs them.
 * `bodySha256` is the body's digest when it was computed as the body arrived: a backend that
 * looks it up (Backend.usesBodySha256) gets it in its ScanMeta instead of hashing the body again.
 */
export async function runScans(
  backends: readonly Backend[],
  body: SpooledBody,
  meta: () => ScanMeta,
  signal: () => AbortSignal,
  streams: ReadonlyMap<Backend, StreamingScan> = NO_STREAMS,
  bodySha256: string | null = null,
): Promise<BackendResult[]> {
  const metaFor = (backend: Backend): ScanMeta =>
    bodySha256 !== null && backend.usesBodySha256 === true ? { ...meta(), bodySha256 } : meta();
  return Promise.all(
    backends.map(async (backend): Promise<BackendResult> => {
      const started = performance.now();
      try {
        const stream = streams.get(backend);
        if (!stream) return scanNowOrError(backend, body) ?? (await backend.scan(body, metaFor(backend), signal()));
        const streamed = await stream.end();
        if (streamed.outcome !== 'error' || streamed.retryable !== true || signal().aborted) return streamed;
        return await backend.scan(body, metaFor(backend), signal());
      } catch (err) {
        return brokenBackend(backend, err, started);
      }
    }),
  );
}

/** The backend's answer at once (Backend.scanNow), undefined when it has none; a throw becomes an error result. */
export function scanNowOrError(backend: Backend, body: SpooledBody): BackendResult | undefined {
  if (backend.scanNow === undefined) return undefined;
  const started = performance.now();
  try {
    return backend.scanNow(body);
  } catch (err) {
    return brokenBackend(backend, err, started);
  }
}

/** A backend that threw (they never should): an error, so one bad engine cannot make a body pass unscanned. */
function brokenBackend(backend: Backend, err: unknown, started: number): BackendResult {
  return {
    outcome: 'error',
    backend: backend.name,
    kind: 'backend-error',
    message: err instanceof Error ? err.message : String(err),
    durationMs: performance.now() - started,
  };
}
