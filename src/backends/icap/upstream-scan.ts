/**
 * One scan attempt on one upstream endpoint: make sure its OPTIONS are fresh, decide the
 * preview, send the request on a pooled (or new) connection and map the answer. What the pool
 * should learn (health) and whether another endpoint may try (retry) come back with the result.
 *
 * A failure on a reused idle connection before any answer byte is the classic keep-alive race
 * (the server closed it as we wrote): tried once more on a fresh connection to the same endpoint,
 * when the body can be replayed.
 */
import { encodeAdaptationRequestHead } from '../../../protocol/index.js';
import type { BackendResult, ScanErrorKind, ScanMeta } from '../backend.js';
import type { LeaseOutcome } from '../pool/endpoint-pool.js';
import type { AttemptResult } from '../pool/failover.js';
import { mapAnswer } from './answer-map.js';
import type { BodySource } from './body-source.js';
import { runExchange } from './exchange.js';
import type { IcapConnection } from './icap-connection.js';
import { encapsulatedHeads } from './http-heads.js';
import type { UpstreamEndpoint } from './upstream-endpoint.js';
import { previewSize, transferMode, urlExtension } from './upstream-options.js';

export interface ScanJob {
  readonly backend: string;
  readonly meta: ScanMeta;
  readonly source: BodySource;
  /** The scan's deadline and the caller's abort, combined. */
  readonly signal: AbortSignal;
  readonly timedOut: () => boolean;
  /** The config's preview_bytes. */
  readonly previewOverride: number | undefined;
}

export async function attemptOnEndpoint(endpoint: UpstreamEndpoint, job: ScanJob): Promise<AttemptResult<BackendResult>> {
  const fail = (kind: ScanErrorKind, message: string, retry: boolean, health: LeaseOutcome): AttemptResult<BackendResult> => {
    const replayable = job.source.replayable;
    // A streamed scan that cannot replay here may still succeed from the spool (BackendResult.retryable).
    const retryable = retry && !replayable && job.source.size === null;
    const value: BackendResult = {
      outcome: 'error',
      backend: job.backend,
      durationMs: 0,
      kind,
      message: `${endpoint.id}: ${message}`,
      endpoint: endpoint.id,
      ...(retryable && { retryable: true as const }),
    };
    return { value, outcome: health, retry: retry && replayable && !job.signal.aborted, detail: message };
  };
  const stopped = (): AttemptResult<BackendResult> =>
    job.timedOut() ? fail('timeout', 'no verdict within timeout_ms', false, 'failure') : fail('backend-error', 'scan aborted', false, 'neutral');

  const got = await endpoint.ensureOptions(job.signal);
  if (job.signal.aborted) return stopped();
  if (!got.ok) return fail(got.kind, got.message, got.retry, got.health);
  const options = got.options;
  const method = job.meta.method;
  if (options.methods !== null && !options.methods.has(method)) {
    return fail('unsupported', `the service offers ${[...options.methods].join(', ') || 'no method'}, not ${method}`, false, 'neutral');
  }
  const extension = urlExtension(job.meta.url);
  const mode = transferMode(options, extension);
  if (mode === 'ignore') {
    // §4.10.2: the service asks not to be sent these files. Unscanned is not clean: on_error decides.
    return fail('unsupported', `the service's Transfer-Ignore covers ".${extension}": not sent, not scanned`, false, 'ok');
  }
  if (options.maxConnections !== null && endpoint.active >= options.maxConnections) {
    return fail('overloaded', `the service's Max-Connections (${options.maxConnections}) are in use`, true, 'neutral');
  }
  const preview = previewSize(options, mode, job.previewOverride);
  const heads = encapsulatedHeads(job.meta);
  const head = encodeAdaptationRequestHead({
    method,
    uri: endpoint.uri,
    host: endpoint.host,
    preview,
    allow204: true,
    reqHdr: heads.reqHdr,
    resHdr: heads.resHdr,
    hasBody: true,
  });
  const request = { head, method, startLine: heads.startLine, preview, hasBody: true } as const;

  for (let tries = 0; tries < 2; tries++) {
    const reader = job.source.open();
    if (reader === null) return fail('backend-error', 'the body can no longer be replayed', false, 'neutral');
    let conn: IcapConnection;
    let reused: boolean;
    try {
      ({ conn, reused } = await endpoint.checkout(job.signal, tries > 0));
    } catch (err) {
      reader.close();
      if (job.signal.aborted) return stopped();
      const e = err as { kind?: ScanErrorKind; refused?: boolean; message: string };
      return fail(e.kind ?? 'unreachable', e.message, true, e.refused === true ? 'down' : 'failure');
    }
    const result = await runExchange(conn, request, reader, job.signal);
    reader.close();
    if (result.ok) {
      endpoint.checkin(conn, result.reusable);
      endpoint.noteIstag(result.answer.headers.get('ISTag'));
      const mapped = mapAnswer(result.sent, result.answer);
      if (mapped.outcome === 'error') return fail(mapped.kind, mapped.message, mapped.retry, mapped.health);
      const value: BackendResult =
        mapped.outcome === 'clean'
          ? { outcome: 'clean', backend: job.backend, durationMs: 0, endpoint: endpoint.id }
          : { outcome: 'infected', backend: job.backend, durationMs: 0, threats: mapped.threats, endpoint: endpoint.id };
      return { value, outcome: mapped.health, retry: false };
    }
    endpoint.checkin(conn, false);
    if (job.signal.aborted) return stopped();
    if (result.cause === 'body') return fail('backend-error', result.message, false, 'neutral');
    if (reused && !result.answerStarted && job.source.replayable) continue;
    // Lost mid-exchange: never a verdict. Another endpoint may try when the body can be replayed.
    return fail('backend-error', `connection lost before a complete answer: ${result.message}`, true, 'failure');
  }
  return fail('backend-error', 'connection lost twice before an answer', true, 'failure');
}
