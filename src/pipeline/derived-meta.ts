/**
 * ScanMeta for content derived from the body (the decoded body, one multipart part, the bytes
 * outside the parts): the encapsulated HTTP head that goes with it must describe these bytes.
 * An engine that reads the head (an upstream ICAP server, ScanMeta.httpHeads) otherwise takes
 * decoded bytes for `Content-Encoding: gzip`, or one part for the whole `multipart/form-data`,
 * with the original Content-Length, and fails on them: another icap-bridge upstream answered
 * "corrupt" / "truncated" and blocked every clean gzip download and every upload.
 *
 * The head of the scanned message (the response in RESPMOD, the request in REQMOD) loses the
 * framing headers of the original bytes and gets a Content-Length for these (the same rewrite
 * as a sanitized copy's, verdict/http-head-rewrite.ts); a part also gets its own Content-Type
 * and file name. The other head (a RESPMOD's request) is kept as it was: it says where the
 * content came from.
 */
import type { ScanMeta } from '../backends/backend.js';
import { rewriteHttpHead } from '../verdict/http-head-rewrite.js';

export interface DerivedContent {
  /** Bytes of the derived content. */
  readonly size: number;
  /** A part's media type; absent for a decoded body (the original Content-Type still holds). */
  readonly contentType?: string;
  /** A part's file name, if it had one. */
  readonly fileName?: string;
}

export function derivedMeta(meta: ScanMeta, content: DerivedContent): ScanMeta {
  const heads = meta.httpHeads;
  const key = meta.method === 'REQMOD' ? 'request' : 'response';
  const head = heads?.[key];
  const changes = {
    contentLength: content.size,
    ...(content.contentType !== undefined && { contentType: content.contentType }),
    ...(content.fileName !== undefined && { fileName: content.fileName }),
  };
  return {
    ...meta,
    ...(content.contentType !== undefined && { contentType: content.contentType }),
    ...(head !== undefined && { httpHeads: { ...heads, [key]: rewriteHttpHead(head, changes) } }),
  };
}
