/**
 * What a transaction's content needs beyond "scan the body as it came" (issue 5), decided at
 * header time from the encapsulated HTTP head of the message being scanned:
 *
 * - Content-Encoding (RESPMOD: the response head; REQMOD: the request head) that we can undo:
 *   the body is scanned decoded at its end, and streaming scans stay closed, because they
 *   would only ever see the compressed bytes. A coding we cannot undo (zstd, a typo) keeps the
 *   streams (the raw bytes are all there is to scan) and becomes an `unsupported` outcome.
 * - REQMOD multipart uploads (form-data, related, mixed...): the parts are split off at the end
 *   and each is scanned as its own file; streams still scan the whole raw body, so nothing is lost if the split fails.
 *
 * Pure: heads and the service's settings in, a plan out.
 */
import type { HttpHead } from '../../protocol/index.js';
import type { ServiceConfig } from '../config/index.js';
import { parseContentEncoding, type ContentDecodingLimits } from '../pipeline/content-decoding.js';
import { partialRange } from '../policy/byte-range.js';

export interface ContentPlan {
  /** Content-Encoding to undo before scanning (the field value as received), or null. */
  readonly decode: { readonly contentEncoding: string; readonly limits: Partial<ContentDecodingLimits> } | null;
  /** True when streaming scans must not open: they would see encoded bytes only. */
  readonly suppressStreams: boolean;
  /** The Content-Type of a multipart upload to split, or null. */
  readonly multipart: { readonly contentType: string; readonly maxParts: number } | null;
}

export const NO_CONTENT_PLAN: ContentPlan = Object.freeze({ decode: null, suppressStreams: false, multipart: null });

export interface ContentPlanInput {
  readonly method: 'REQMOD' | 'RESPMOD';
  readonly reqHdr: HttpHead | null;
  readonly resHdr: HttpHead | null;
  readonly service: Pick<ServiceConfig, 'content_decoding' | 'multipart'>;
}

/**
 * An upload split into its parts: any multipart/* but byteranges (pieces of one file, not files).
 * Not only form-data: multipart/related (Google Drive and other API uploads, SOAP MTOM) and
 * multipart/mixed carry files too, often base64-encoded, which a scan of the raw body misses.
 */
const MULTIPART_UPLOAD = /^\s*multipart\/(?!byteranges\s*(?:;|$))[!#$%&'*+.^_`|~0-9a-z-]+\s*(?:;|$)/i;

export function planContent(input: ContentPlanInput): ContentPlan {
  // The message being scanned: a REQMOD's request, a RESPMOD's response.
  const head = input.method === 'REQMOD' ? input.reqHdr : input.resHdr;
  if (head === null) return NO_CONTENT_PLAN;
  const settings = input.service.content_decoding;
  let decode: ContentPlan['decode'] = null;
  let suppressStreams = false;
  // RFC 9110 §5.3: several fields of one list-valued name are one comma-joined list.
  const fields = settings.enabled ? head.headers.getAll('Content-Encoding') : [];
  // A piece of a file (a 206 range, a partial PUT; byte-range.ts) is a piece of its encoded form
  // too (RFC 9110 §14: ranges apply to the representation as encoded): it cannot be decoded
  // alone, and trying made every range of a gzip-encoded download corrupt or truncated, blocked
  // by default. Its bytes are scanned as they are, as every piece is.
  if (fields.length > 0 && partialRange(input.method, input.reqHdr, input.resHdr) === undefined) {
    const contentEncoding = fields.join(', ');
    const parsed = parseContentEncoding(contentEncoding);
    const undo = parsed.ok ? parsed.codings.length > 0 : true;
    if (undo) {
      decode = { contentEncoding, limits: { maxDecodedBytes: settings.max_decoded_bytes, maxRatio: settings.max_ratio } };
      suppressStreams = parsed.ok;
    }
  }
  const contentType = head.headers.get('Content-Type');
  const multipart =
    input.method === 'REQMOD' && input.service.multipart.enabled && contentType !== undefined && MULTIPART_UPLOAD.test(contentType)
      ? { contentType, maxParts: input.service.multipart.max_parts }
      : null;
  return { decode, suppressStreams, multipart };
}
