/**
 * An upstream ICAP answer → a verdict (shared/specs/other-engines.md §9). Pure: the exchange
 * gathers the facts (what we sent, what came back) and this table decides.
 *
 *   204                                  clean (the service left the message alone)
 *   200/201/204 + infection header       infected, with the names X-Infection-Found,
 *                                        X-Violations-Found and X-Virus-ID give
 *   201 without one                      infected, UPSTREAM_BLOCKED (Symantec's "infected" status)
 *   200 that changed the HTTP message    infected, UPSTREAM_BLOCKED: a block page (another
 *                                        status), request satisfaction (REQMOD answered with a
 *                                        response), another body, or a body the service never
 *                                        saw whole — anything but an unchanged echo
 *   200 echoing what we sent             clean
 *   503                                  overloaded, retried on another endpoint
 *   408                                  timeout
 *   400, 404, 405, 418, 500, 501, 505…   backend-error, not retried (the same request would
 *                                        fail the same way elsewhere)
 *   206, 1xx, 3xx, others                backend-error (we never offered Allow: 206)
 *
 * A modified 200 without an infection header is called infected rather than "sanitized": the
 * service chose not to pass the original, and the bridge answers with its own block page rather
 * than relaying a third party's page or rewritten content. UPSTREAM_BLOCKED names the case in
 * the access log and the X-Infection-Found header.
 */
import { createHash } from 'node:crypto';
import type { HeaderList, HttpHead } from '../../../protocol/index.js';
import type { ScanErrorKind } from '../backend.js';
import type { LeaseOutcome } from '../pool/endpoint-pool.js';
import { detection, UPSTREAM_BLOCKED } from './threat-headers.js';

export interface SentMessage {
  readonly method: 'REQMOD' | 'RESPMOD';
  /** Start line of the encapsulated head that goes with the body (res-hdr for RESPMOD, req-hdr for REQMOD). */
  readonly startLine: string | null;
  readonly bodyBytes: number;
  /** SHA-256 (hex) of the body bytes sent. */
  readonly bodySha256: string;
  /** The whole body reached the service (not only a preview it answered early). */
  readonly complete: boolean;
}

export interface UpstreamAnswer {
  readonly status: number;
  readonly reason: string;
  readonly headers: HeaderList;
  /** The ICAP head as received, for folded headers. */
  readonly rawHead: Buffer;
  readonly httpHeads: readonly HttpHead[];
  /** Whether a body section came back, its length and SHA-256 (hex). */
  readonly body: { readonly bytes: number; readonly sha256: string } | null;
}

export type MappedAnswer =
  | { readonly outcome: 'clean'; readonly health: LeaseOutcome }
  | { readonly outcome: 'infected'; readonly threats: readonly string[]; readonly health: LeaseOutcome }
  | { readonly outcome: 'error'; readonly kind: ScanErrorKind; readonly message: string; readonly retry: boolean; readonly health: LeaseOutcome };

export const EMPTY_SHA256 = createHash('sha256').digest('hex');

export function mapAnswer(sent: SentMessage, answer: UpstreamAnswer): MappedAnswer {
  const { status } = answer;
  const what = `${status} ${answer.reason}`.trim();
  if (status === 200 || status === 201 || status === 204) {
    const found = detection(answer.headers, answer.rawHead);
    if (found.detected) return { outcome: 'infected', threats: found.threats.length > 0 ? found.threats : [UPSTREAM_BLOCKED], health: 'ok' };
    if (status === 204) return { outcome: 'clean', health: 'ok' };
    if (status === 201 || !isUnchangedEcho(sent, answer)) return { outcome: 'infected', threats: [UPSTREAM_BLOCKED], health: 'ok' };
    return { outcome: 'clean', health: 'ok' };
  }
  if (status === 503) return { outcome: 'error', kind: 'overloaded', message: `upstream answered ${what}`, retry: true, health: 'failure' };
  if (status === 408) return { outcome: 'error', kind: 'timeout', message: `upstream answered ${what}`, retry: false, health: 'failure' };
  if (status >= 500) return { outcome: 'error', kind: 'backend-error', message: `upstream answered ${what}`, retry: false, health: 'failure' };
  if (status >= 400) {
    // The service is up and talking; the request (path, method, composition) is what it refuses.
    const hint = status === 404 ? ' (wrong service path?)' : status === 405 ? ' (method not offered by this service)' : '';
    return { outcome: 'error', kind: 'backend-error', message: `upstream answered ${what}${hint}`, retry: false, health: 'neutral' };
  }
  return { outcome: 'error', kind: 'backend-error', message: `upstream answered unexpected status ${what}`, retry: false, health: 'neutral' };
}

/** A 200 that gives back the message we sent: same status or request line, same body bytes. */
export function isUnchangedEcho(sent: SentMessage, answer: UpstreamAnswer): boolean {
  const reqHdr = answer.httpHeads.find((h) => h.section === 'req-hdr');
  const resHdr = answer.httpHeads.find((h) => h.section === 'res-hdr');
  if (sent.method === 'REQMOD') {
    // §4.8.2 request satisfaction: a REQMOD answered with an HTTP response replaces the request.
    if (resHdr !== undefined) return false;
    if (reqHdr !== undefined && sent.startLine !== null && requestTarget(reqHdr.startLine) !== requestTarget(sent.startLine)) return false;
  } else if (resHdr !== undefined && sent.startLine !== null && statusCode(resHdr.startLine) !== statusCode(sent.startLine)) {
    return false;
  }
  if (sent.bodyBytes === 0) return answer.body === null || answer.body.bytes === 0;
  // The echo must be of the whole body; a service that answered 200 to a preview cannot have echoed it.
  return sent.complete && answer.body !== null && answer.body.bytes === sent.bodyBytes && answer.body.sha256 === sent.bodySha256;
}

/** `HTTP/1.1 403 Forbidden` → `403`. */
function statusCode(line: string): string {
  return line.split(' ')[1] ?? '';
}

/** `GET http://x/y HTTP/1.1` → `GET http://x/y`. */
function requestTarget(line: string): string {
  return line.split(' ').slice(0, 2).join(' ');
}
