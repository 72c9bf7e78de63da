/**
 * 206 Partial Content (icap-extensions.md §C, Squid's `icap_206_enable`): for an unchanged message,
 * the HTTP headers and `use-original-body=0` instead of echoing the body back. It matters where no
 * 204 goes out: a service with `allow_204: false` (a client that mishandles 204), whose allow
 * settled by the preview can then be answered there without reading the rest of the body.
 */
import { encodeResponseHead, encodeUseOriginalBody, type HeaderPairs } from '../../protocol/index.js';

export interface PartialContentFacts {
  /** services.NAME.allow_206. */
  readonly serviceAllows206: boolean;
  /** The request's Allow tokens. */
  readonly allow: ReadonlySet<string>;
  /** A body and the HTTP head it belongs to were sent: without them there is nothing to splice. */
  readonly hasBodyAndHead: boolean;
  /** The answer goes out at the end of a preview, before any 100 Continue (not after ieof). */
  readonly answeringPreview: boolean;
}

/**
 * The client sent Allow: 206 (§C: never a 206 otherwise) and still holds the whole body that
 * `use-original-body=0` points into:
 * - answering a preview, the client holds what it previewed and has not sent the rest (§4.5);
 * - after 100 Continue or an ieof preview, only a client that also offered 204 outside preview
 *   promised to keep the whole body (RFC 3507 §4.6). Squid writes "Allow: 204, 206" exactly then
 *   and honours a bare "Allow: 206" only inside a preview (ModXact::makeAllowHeader; a 206 it did
 *   not expect fails the transaction).
 */
export function may206(facts: PartialContentFacts): boolean {
  if (!facts.serviceAllows206 || !facts.allow.has('206') || !facts.hasBodyAndHead) return false;
  return facts.answeringPreview || facts.allow.has('204');
}

export interface PartialContentInit {
  /** ICAP headers (ISTag, decision...), Encapsulated excluded. */
  readonly headers: HeaderPairs;
  readonly method: 'REQMOD' | 'RESPMOD';
  /** The original encapsulated HTTP head: the request's for REQMOD, the response's for RESPMOD. */
  readonly httpHead: Buffer;
}

/** The whole 206: status line, headers, the original HTTP head, and an empty body ending in use-original-body=0. */
export function encodePartialContent(init: PartialContentInit): Buffer {
  const isReqmod = init.method === 'REQMOD';
  return Buffer.concat([
    encodeResponseHead({
      status: 206,
      headers: init.headers,
      reqHdr: isReqmod ? init.httpHead : null,
      resHdr: isReqmod ? null : init.httpHead,
      body: isReqmod ? 'req-body' : 'res-body',
    }),
    encodeUseOriginalBody(0),
  ]);
}
