/**
 * The ICAP response head, as an ICAP client reads it: status line (RFC 3507 §4.3.3, which
 * borrows RFC 2616 §6.1), headers, and the Encapsulated header that frames what follows
 * (§4.4.1; errata e1: no Encapsulated, no body).
 */
import { IcapProtocolError } from './errors.js';
import { parseHeaderBlock } from './header-block.js';
import type { HeaderList } from './header-list.js';
import type { DecoderLimits } from './types.js';

export type ResponseHeaderSection = 'req-hdr' | 'res-hdr';
export type ResponseBodySection = 'req-body' | 'res-body' | 'opt-body';

export interface ResponseEncapsulated {
  /** Header blocks in wire order with their exact byte lengths. */
  readonly headers: readonly { readonly name: ResponseHeaderSection; readonly length: number }[];
  /** The body tag, or null for null-body (and for a response without Encapsulated). */
  readonly body: ResponseBodySection | null;
}

export interface IcapResponseHead {
  /** e.g. `ICAP/1.0`. */
  readonly version: string;
  readonly status: number;
  /** The reason phrase as sent; may be ''. */
  readonly reason: string;
  readonly headers: HeaderList;
  /** Status line and headers exactly as received, including the final empty line. */
  readonly raw: Buffer;
  readonly encapsulated: ResponseEncapsulated;
}

const STATUS_LINE = /^ICAP\/(\d+)\.(\d+) (\d{3})(?: (.*))?$/;
const ENTITY = /^(req-hdr|res-hdr|req-body|res-body|opt-body|null-body)=(\d{1,15})$/;
const HEADER_ORDER: readonly ResponseHeaderSection[] = ['req-hdr', 'res-hdr'];

function badEncapsulated(message: string): never {
  throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `response Encapsulated: ${message}`);
}

/**
 * §4.4.1 response forms: REQMOD `[req-hdr] req-body | [req-hdr] null-body | [res-hdr] res-body |
 * [res-hdr] null-body`, RESPMOD `[res-hdr] res-body | [res-hdr] null-body`, OPTIONS `opt-body |
 * null-body`. The decoder does not know which request a response answers, so it accepts their
 * union in grammar order (req-hdr before res-hdr, one body tag last) and leaves "is this the
 * right form for my request" to the caller. Offsets start at 0 and increase, so framing is exact.
 */
export function parseResponseEncapsulated(value: string, maxHeaderBytes: number): ResponseEncapsulated {
  const sections: { name: string; offset: number }[] = [];
  for (const part of value.split(',')) {
    const match = ENTITY.exec(part.trim().toLowerCase());
    if (match === null) badEncapsulated(`unknown or malformed entity ${JSON.stringify(part.trim().slice(0, 40))}`);
    sections.push({ name: match[1]!, offset: Number(match[2]) });
  }
  const last = sections[sections.length - 1]!;
  if (last.name === 'req-hdr' || last.name === 'res-hdr') badEncapsulated(`must end with a body tag, not ${last.name}`);
  if (sections[0]!.offset !== 0) badEncapsulated('the first section must be at offset 0');
  const headers: { name: ResponseHeaderSection; length: number }[] = [];
  let order = 0;
  for (let i = 0; i < sections.length - 1; i++) {
    const name = sections[i]!.name;
    const at = HEADER_ORDER.indexOf(name as ResponseHeaderSection, order);
    if (at === -1) badEncapsulated(`${name} is not allowed at position ${i + 1}`);
    order = at + 1;
    const length = sections[i + 1]!.offset - sections[i]!.offset;
    if (length <= 0) badEncapsulated('offsets must increase');
    if (length > maxHeaderBytes) {
      throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `${name} block of ${length} bytes exceeds ${maxHeaderBytes}`);
    }
    headers.push({ name: name as ResponseHeaderSection, length });
  }
  return { headers, body: last.name === 'null-body' ? null : (last.name as ResponseBodySection) };
}

/** `raw` is the whole head including the final CRLF CRLF. */
export function parseResponseHead(raw: Buffer, limits: Pick<DecoderLimits, 'headerCount' | 'httpHeaderBytes'>): IcapResponseHead {
  const block = parseHeaderBlock(raw.toString('latin1', 0, raw.length - 4), limits.headerCount, 'ICAP response');
  const match = STATUS_LINE.exec(block.startLine);
  if (match === null) {
    throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed status line ${JSON.stringify(block.startLine.slice(0, 100))}`);
  }
  if (match[1] !== '1' || match[2] !== '0') {
    throw new IcapProtocolError('ICAP_ERR_VERSION', `response version ICAP/${match[1]}.${match[2]} not supported`);
  }
  const status = Number(match[3]);
  const value = block.headers.get('Encapsulated');
  // Errata e1: the Encapsulated header alone decides whether a body follows; 100 Continue never has one.
  const encapsulated = value === undefined ? { headers: [], body: null } : parseResponseEncapsulated(value, limits.httpHeaderBytes);
  if (status === 100 && (encapsulated.headers.length > 0 || encapsulated.body !== null)) {
    throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', '100 Continue must not encapsulate anything (§4.5)');
  }
  return {
    version: `ICAP/${match[1]}.${match[2]}`,
    status,
    reason: match[4] ?? '',
    headers: block.headers,
    raw,
    encapsulated,
  };
}
