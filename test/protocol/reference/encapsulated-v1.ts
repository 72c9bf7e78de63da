/**
 * parseEncapsulated as it was before Session 14 made it allocation-light (one array of entity
 * objects per call): the reference test/protocol/encapsulated.test.ts holds the new one to. It keeps
 * its own copy of the §4.4.1 grammar on purpose, so a change to the real table shows as a difference.
 */
import { IcapProtocolError } from '../../../protocol/errors.js';
import { isTrimmed } from '../../../protocol/header-block.js';
import type { BodySectionName, Encapsulated, HeaderSectionName, SectionName } from '../../../protocol/encapsulated.js';

interface EncapsulatedSection {
  readonly name: SectionName;
  readonly offset: number;
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

const SECTION_NAMES: ReadonlySet<string> = new Set(['req-hdr', 'res-hdr', 'req-body', 'res-body', 'opt-body', 'null-body']);
/** An offset has 1 to 15 digits: at most 10^15 - 1, exact in a double. */
const MAX_OFFSET_DIGITS = 15;

/**
 * The `name=offset` entity at value[start, end), already trimmed; null when malformed. Names are
 * case-insensitive (what the regex on the lower-cased entity accepted before: it cost ≈ 5 % of a
 * null-body REQMOD's JavaScript, with split, trim and toLowerCase per entity; bench/hot-path.ts).
 * Read by index, so a well-formed entity costs no string but its name.
 */
function parseEntity(value: string, start: number, end: number): EncapsulatedSection | null {
  const eq = value.indexOf('=', start);
  if (eq <= start || eq >= end) return null;
  let name = value.slice(start, eq);
  if (!SECTION_NAMES.has(name)) {
    name = name.toLowerCase();
    if (!SECTION_NAMES.has(name)) return null;
  }
  const digits = end - eq - 1;
  if (digits < 1 || digits > MAX_OFFSET_DIGITS) return null;
  let offset = 0;
  for (let i = eq + 1; i < end; i++) {
    const digit = value.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return null;
    offset = offset * 10 + digit;
  }
  return { name: name as SectionName, offset };
}

function fail(message: string): never {
  throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `Encapsulated: ${message}`);
}

export function parseEncapsulated(value: string, method: Method, maxOffset: number): Encapsulated {
  const sections: EncapsulatedSection[] = [];
  for (let next = 0; next <= value.length; ) {
    const comma = value.indexOf(',', next);
    let start = next;
    let end = comma === -1 ? value.length : comma;
    next = end + 1;
    while (start < end && isTrimmed(value.charCodeAt(start))) start++;
    while (end > start && isTrimmed(value.charCodeAt(end - 1))) end--;
    const section = parseEntity(value, start, end);
    if (section === null) fail(`unknown or malformed entity ${JSON.stringify(value.slice(start, end))}`);
    if (section.offset > maxOffset) fail(`offset ${section.offset} exceeds the header limit ${maxOffset}`);
    sections.push(section);
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
