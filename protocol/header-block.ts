/**
 * Parsing of one CRLF-terminated header block (ICAP or encapsulated HTTP), RFC 3507 §4.3
 * (which borrows RFC 2616 §4.2 message-header syntax). Bytes are decoded as latin1 so every
 * byte survives; the caller keeps the block's text and gives its exact bytes back from it for
 * echoing (head-reader.ts, request-head.ts: `raw`).
 */
import { IcapProtocolError } from './errors.js';
import { HeaderList, type HeaderField } from './header-list.js';

/** RFC 7230 §3.2.6 tchar: "!#$%&'*+-.^_`|~", digits and letters. Indexed by char code (< 128). */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

/** A header name is a non-empty token (checked with a table: a regex per line cost more). */
function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

/**
 * What String.prototype.trim() removes, among the characters a latin1-decoded block can hold: TAB,
 * LF, VT, FF, CR, SP and NBSP (ECMAScript WhiteSpace and LineTerminator below U+0100). RFC 7230
 * §3.2.3's OWS is only SP and HTAB; values were trimmed with trim() before and keep that meaning.
 */
export function isTrimmed(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0;
}

export interface ParsedBlock {
  /** The first line (request line, status line or HTTP start line). */
  readonly startLine: string;
  readonly headers: HeaderList;
}

/**
 * Parses `text` (latin1, without the final empty line) into a start line and headers.
 * Continuation lines (obs-fold, RFC 2616 §2.2) join the previous value with one space.
 */
export function parseHeaderBlock(text: string, maxHeaderCount: number, what: string): ParsedBlock {
  // Line by line with indexOf rather than split('\r\n'): no array of every line first.
  let lineEnd = text.indexOf('\r\n');
  const startLine = lineEnd === -1 ? text : text.slice(0, lineEnd);
  const fields: HeaderField[] = [];
  // Each line is read by its indexes in `text` (no string per line: only the name and value are cut).
  while (lineEnd !== -1) {
    const lineStart = lineEnd + 2;
    lineEnd = text.indexOf('\r\n', lineStart);
    const stop = lineEnd === -1 ? text.length : lineEnd;
    if (stop === lineStart) continue;
    const first = text.charCodeAt(lineStart);
    if (first === 0x20 || first === 0x09) {
      const last = fields.pop();
      if (last === undefined) {
        throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${what}: continuation line before any header`);
      }
      fields.push({ name: last.name, value: `${last.value} ${text.slice(lineStart, stop).trim()}` });
      continue;
    }
    const colon = text.indexOf(':', lineStart);
    const name = colon > lineStart && colon < stop ? text.slice(lineStart, colon) : '';
    if (!isToken(name)) {
      throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${what}: malformed header line ${JSON.stringify(text.slice(lineStart, Math.min(stop, lineStart + 80)))}`);
    }
    if (fields.length >= maxHeaderCount) {
      throw new IcapProtocolError('ICAP_ERR_TOO_MANY_HEADERS', `${what}: more than ${maxHeaderCount} headers`);
    }
    // The value without surrounding whitespace, by index: one string, where slice().trim() made two.
    let valueStart = colon + 1;
    let valueEnd = stop;
    while (valueStart < valueEnd && isTrimmed(text.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isTrimmed(text.charCodeAt(valueEnd - 1))) valueEnd--;
    fields.push({ name, value: text.slice(valueStart, valueEnd) });
  }
  return { startLine, headers: new HeaderList(fields) };
}
