/**
 * Parsing of one CRLF-terminated header block (ICAP or encapsulated HTTP), RFC 3507 §4.3
 * (which borrows RFC 2616 §4.2 message-header syntax). Bytes are decoded as latin1 so every
 * byte survives; the raw block is kept by the caller for echoing.
 */
import { IcapProtocolError } from './errors.js';
import { HeaderList, type HeaderField } from './header-list.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

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
  const lines = text.split('\r\n');
  const startLine = lines[0] ?? '';
  const fields: HeaderField[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    if (line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09) {
      const last = fields.pop();
      if (last === undefined) {
        throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${what}: continuation line before any header`);
      }
      fields.push({ name: last.name, value: `${last.value} ${line.trim()}` });
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) {
      throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${what}: malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (fields.length >= maxHeaderCount) {
      throw new IcapProtocolError('ICAP_ERR_TOO_MANY_HEADERS', `${what}: more than ${maxHeaderCount} headers`);
    }
    fields.push({ name, value: line.slice(colon + 1).trim() });
  }
  return { startLine, headers: new HeaderList(fields) };
}
