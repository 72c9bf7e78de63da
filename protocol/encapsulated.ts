/**
 * The Encapsulated header, RFC 3507 §4.4.1: which sections the message body carries, in
 * which order, at which byte offsets. Validated per method so the decoder can frame the
 * message exactly and reject anything it cannot frame.
 */
import { IcapProtocolError } from './errors.js';

export type HeaderSectionName = 'req-hdr' | 'res-hdr';
export type BodySectionName = 'req-body' | 'res-body' | 'opt-body' | 'null-body';
export type SectionName = HeaderSectionName | BodySectionName;

export interface EncapsulatedSection {
  readonly name: SectionName;
  readonly offset: number;
}

export interface Encapsulated {
  /** Header blocks in wire order, each with its exact byte length (next offset − own offset). */
  readonly headers: readonly { readonly name: HeaderSectionName; readonly length: number }[];
  /** The body tag; 'null-body' means no body follows (errata e1). */
  readonly body: BodySectionName;
  /** Offset of the body tag: the total length of the header blocks. */
  readonly bodyOffset: number;
}

type Method = 'REQMOD' | 'RESPMOD' | 'OPTIONS';

/**
 * §4.4.1 forms for requests (as clarified by errata e4):
 *   REQMOD  request:  [req-hdr] req-body | [req-hdr] null-body   (at least one of the two present)
 *   RESPMOD request:  [req-hdr] [res-hdr] res-body | ... null-body
 *   OPTIONS request:  [opt-body | null-body]  (errata e1: OPTIONS normally has no body)
 */
const ALLOWED: Record<Method, { headers: readonly HeaderSectionName[]; bodies: readonly BodySectionName[] }> = {
  REQMOD: { headers: ['req-hdr'], bodies: ['req-body', 'null-body'] },
  RESPMOD: { headers: ['req-hdr', 'res-hdr'], bodies: ['res-body', 'null-body'] },
  OPTIONS: { headers: [], bodies: ['opt-body', 'null-body'] },
};

const ENTITY = /^(req-hdr|res-hdr|req-body|res-body|opt-body|null-body)=(\d{1,15})$/;

function fail(message: string): never {
  throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `Encapsulated: ${message}`);
}

export function parseEncapsulated(value: string, method: Method, maxOffset: number): Encapsulated {
  const sections: EncapsulatedSection[] = [];
  for (const part of value.split(',')) {
    const match = ENTITY.exec(part.trim().toLowerCase());
    if (match === null) fail(`unknown or malformed entity ${JSON.stringify(part.trim())}`);
    const offset = Number(match[2]);
    if (offset > maxOffset) fail(`offset ${offset} exceeds the header limit ${maxOffset}`);
    sections.push({ name: match[1] as SectionName, offset });
  }

  const allowed = ALLOWED[method];
  const last = sections[sections.length - 1]!;
  const bodyName = last.name;
  if (!allowed.bodies.includes(bodyName as BodySectionName)) {
    fail(`${method} must end with one of ${allowed.bodies.join(', ')}, not ${bodyName}`);
  }
  const headerSections = sections.slice(0, -1);
  // Header sections appear in the order the grammar lists them, each at most once, and never a
  // second body ("At most one body per encapsulated message is allowed").
  let grammarIndex = 0;
  for (const section of headerSections) {
    const at = allowed.headers.indexOf(section.name as HeaderSectionName, grammarIndex);
    if (at === -1) fail(`${section.name} is not allowed here in a ${method} request`);
    grammarIndex = at + 1;
  }
  if (method === 'REQMOD' && headerSections.length === 0 && bodyName === 'null-body') {
    fail('REQMOD needs req-hdr or req-body (errata e4)');
  }
  if (method === 'RESPMOD' && bodyName === 'null-body' && !headerSections.some((s) => s.name === 'res-hdr')) {
    fail('RESPMOD needs res-hdr or res-body (errata e4)');
  }

  // "the offsets listed in the Encapsulated line MUST be monotonically increasing"; the first
  // section starts the ICAP body, so its offset is 0. Every header block has a length > 0.
  if (sections[0]!.offset !== 0) fail('the first section must be at offset 0');
  const headers: { name: HeaderSectionName; length: number }[] = [];
  for (let i = 0; i < headerSections.length; i++) {
    const length = sections[i + 1]!.offset - sections[i]!.offset;
    if (length <= 0) fail('offsets must increase');
    headers.push({ name: headerSections[i]!.name as HeaderSectionName, length });
  }
  return { headers, body: bodyName as BodySectionName, bodyOffset: last.offset };
}
