/**
 * Whether the scanned body is only a piece of a file (RFC 9110 §14, range requests).
 *
 * A download fetched in ranges reaches the ICAP server as one RESPMOD per `206 Partial Content`,
 * each scanned alone: a file cut across two ranges is never seen whole, and a signature split
 * between them matches in neither (the OPSWAT ICAP Server manual, "Risks with range request").
 * Rules can match on it (`match: { partial: true }`) and the access log names the range.
 *
 * A piece is:
 * - RESPMOD: a `206` response, unless its one Content-Range covers the whole representation
 *   (`bytes 0-N/N+1`, what `Range: bytes=0-` gets; a player's first request);
 * - REQMOD: a request body with a Content-Range (a partial PUT, §14.5), unless it covers the whole.
 * A 206 with several ranges (`multipart/byteranges`, §14.6) or without a usable Content-Range is a
 * piece too: it cannot be shown to be the whole file.
 */

import { httpStatusCode, trimOws } from '../../protocol/index.js';

/** Just enough of an HTTP head: its start line and a header lookup. */
export interface RangeHeadView {
  readonly startLine: string;
  readonly headers: { getAll(name: string): readonly string[] };
}

/** RFC 9110 §14.4: `bytes first-last/complete` or `bytes first-last/*`. Range units are case-insensitive (§14.1). */
const CONTENT_RANGE = /^bytes[ \t]+(\d{1,16})-(\d{1,16})\/(\d{1,16}|\*)$/i;

/**
 * True when `value` is a satisfied byte range covering all of a representation of known length.
 * Only OWS (SP, HTAB; RFC 9110 §5.6.3) is trimmed: trim() would also take a trailing byte 0xA0,
 * VT or FF, and such a value is no Content-Range, so it cannot show the body whole.
 */
export function coversWholeRepresentation(value: string): boolean {
  const m = CONTENT_RANGE.exec(trimOws(value));
  if (m === null || m[3] === '*') return false;
  const complete = Number(m[3]);
  return Number(m[1]) === 0 && Number(m[2]) === complete - 1;
}

/** What the piece is, for the access log: its Content-Range, or why it has none. */
function describe(contentRanges: readonly string[], contentType: readonly string[]): string | undefined {
  if (contentRanges.length === 1) return coversWholeRepresentation(contentRanges[0]!) ? undefined : trimOws(contentRanges[0]!);
  if (contentRanges.length > 1) return 'several Content-Range headers';
  const type = contentType[0] === undefined ? undefined : trimOws(contentType[0].split(';')[0]!).toLowerCase();
  return type === 'multipart/byteranges' ? 'multipart/byteranges' : 'no Content-Range';
}

/**
 * The range the scanned body is a piece of (its Content-Range, `multipart/byteranges`, ...), or
 * undefined when the body is the whole message (or there is no message to scan).
 */
export function partialRange(
  icapMethod: 'REQMOD' | 'RESPMOD',
  reqHdr: RangeHeadView | null,
  resHdr: RangeHeadView | null,
): string | undefined {
  if (icapMethod === 'RESPMOD') {
    if (resHdr === null || httpStatusCode(resHdr.startLine) !== 206) return undefined;
    return describe(resHdr.headers.getAll('Content-Range'), resHdr.headers.getAll('Content-Type'));
  }
  if (reqHdr === null) return undefined;
  const ranges = reqHdr.headers.getAll('Content-Range');
  return ranges.length === 0 ? undefined : describe(ranges, []);
}
