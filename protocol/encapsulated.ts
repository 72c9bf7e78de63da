/**
 * The Encapsulated header, RFC 3507 §4.4.1: which sections the message body carries, in
 * which order, at which byte offsets. Validated per method so the decoder can frame the
 * message exactly and reject anything it cannot frame.
 */
import { IcapProtocolError } from './errors.js';
import { isTrimmed } from './header-block.js';

export type HeaderSectionName = 'req-hdr' | 'res-hdr';
export type BodySectionName = 'req-body' | 'res-body' | 'opt-body' | 'null-body';
export type SectionName = HeaderSectionName | BodySectionName;

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

const SECTION_NAMES: readonly SectionName[] = ['req-hdr', 'res-hdr', 'req-body', 'res-body', 'opt-body', 'null-body'];
/** An offset has 1 to 15 digits: at most 10^15 - 1, exact in a double. */
const MAX_OFFSET_DIGITS = 15;
/** At most three entities can be valid ([req-hdr] [res-hdr] body); one more is read to be reported. */
const MAX_ENTITIES = 4;

/**
 * The entities of the value being parsed, reused from call to call (parseEncapsulated runs to the
 * end without yielding): a null-body REQMOD allocated ≈ 590 bytes here in arrays, entity objects and
 * name strings (bench/alloc-top.ts), now ≈ 100 for the result alone. Fewer bytes per request mean
 * rarer young-generation GCs, whose pauses a p99 feels.
 */
const entityNames: SectionName[] = new Array<SectionName>(MAX_ENTITIES).fill('null-body');
const entityOffsets: number[] = new Array<number>(MAX_ENTITIES).fill(0);

/**
 * The section name of value[start, eq), or null. Names are case-insensitive (what the regex on the
 * lower-cased entity accepted before: it cost ≈ 5 % of a null-body REQMOD's JavaScript, with split,
 * trim and toLowerCase per entity; bench/hot-path.ts). The names as written cost no string.
 */
function sectionName(value: string, start: number, eq: number): SectionName | null {
  const length = eq - start;
  for (const name of SECTION_NAMES) {
    if (name.length === length && value.startsWith(name, start)) return name;
  }
  const lower = value.slice(start, eq).toLowerCase();
  for (const name of SECTION_NAMES) if (name === lower) return name;
  return null;
}

/**
 * The `name=offset` entity at value[start, end), already trimmed, into entityNames/entityOffsets
 * at `index`; false when malformed. Read by index.
 */
function parseEntity(value: string, start: number, end: number, index: number): boolean {
  const eq = value.indexOf('=', start);
  if (eq <= start || eq >= end) return false;
  const name = sectionName(value, start, eq);
  if (name === null) return false;
  const digits = end - eq - 1;
  if (digits < 1 || digits > MAX_OFFSET_DIGITS) return false;
  let offset = 0;
  for (let i = eq + 1; i < end; i++) {
    const digit = value.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return false;
    offset = offset * 10 + digit;
  }
  entityNames[index] = name;
  entityOffsets[index] = offset;
  return true;
}

function fail(message: string): never {
  throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `Encapsulated: ${message}`);
}

export function parseEncapsulated(value: string, method: Method, maxOffset: number): Encapsulated {
  let count = 0;
  for (let next = 0; next <= value.length; ) {
    const comma = value.indexOf(',', next);
    let start = next;
    let end = comma === -1 ? value.length : comma;
    next = end + 1;
    while (start < end && isTrimmed(value.charCodeAt(start))) start++;
    while (end > start && isTrimmed(value.charCodeAt(end - 1))) end--;
    // Past the most a valid value holds, the grammar check below fails anyway: keep the last one
    // read in the spare slot, so that check names the same sections as when all were kept.
    const index = count < MAX_ENTITIES ? count : MAX_ENTITIES - 1;
    if (!parseEntity(value, start, end, index)) fail(`unknown or malformed entity ${JSON.stringify(value.slice(start, end))}`);
    if (entityOffsets[index]! > maxOffset) fail(`offset ${entityOffsets[index]} exceeds the header limit ${maxOffset}`);
    count++;
  }

  const allowed = ALLOWED[method];
  const bodyName = entityNames[Math.min(count, MAX_ENTITIES) - 1]!;
  if (!allowed.bodies.includes(bodyName as BodySectionName)) {
    fail(`${method} must end with one of ${allowed.bodies.join(', ')}, not ${bodyName}`);
  }
  const headerCount = count - 1;
  let grammarIndex = 0;
  let hasResHdr = false;
  for (let i = 0; i < headerCount; i++) {
    // i never reaches the spare slot (3): no method allows more than two header sections, so the
    // third (i = 2) fails here at the latest. Slots 0–2 hold the first three entities as read.
    const name = entityNames[i]!;
    const at = allowed.headers.indexOf(name as HeaderSectionName, grammarIndex);
    if (at === -1) fail(`${name} is not allowed here in a ${method} request`);
    grammarIndex = at + 1;
    if (name === 'res-hdr') hasResHdr = true;
  }
  if (method === 'REQMOD' && headerCount === 0 && bodyName === 'null-body') {
    fail('REQMOD needs req-hdr or req-body (errata e4)');
  }
  if (method === 'RESPMOD' && bodyName === 'null-body' && !hasResHdr) {
    fail('RESPMOD needs res-hdr or res-body (errata e4)');
  }

  if (entityOffsets[0] !== 0) fail('the first section must be at offset 0');
  const headers: { name: HeaderSectionName; length: number }[] = new Array(headerCount);
  for (let i = 0; i < headerCount; i++) {
    const length = entityOffsets[i + 1]! - entityOffsets[i]!;
    if (length <= 0) fail('offsets must increase');
    headers[i] = { name: entityNames[i] as HeaderSectionName, length };
  }
  return { headers, body: bodyName as BodySectionName, bodyOffset: entityOffsets[headerCount]! };
}
