/**
 * The ICAP request head: request line (RFC 3507 §4.3.2), headers, and the checks that decide
 * how the rest of the message is framed (Encapsulated §4.4.1, Preview §4.5).
 */
import { parseEncapsulated, type Encapsulated } from './encapsulated.js';
import { IcapProtocolError } from './errors.js';
import { parseHeaderBlock } from './header-block.js';
import type { HeaderList } from './header-list.js';
import type { DecoderLimits, IcapMethod, IcapRequestHead } from './types.js';

const METHODS: ReadonlySet<string> = new Set(['OPTIONS', 'REQMOD', 'RESPMOD']);
const METHOD_TOKEN = /^[A-Z][A-Z0-9_-]*$/i;
const VERSION = /^ICAP\/(\d+)\.(\d+)$/;

/** Whether `s` starts with `prefix` (lower-case ASCII), its letters compared case-insensitively. */
function startsWithFolded(s: string, prefix: string): boolean {
  if (s.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    const want = prefix.charCodeAt(i);
    const got = s.charCodeAt(i);
    const isLetter = want >= 0x61 && want <= 0x7a;
    if (got !== want && !(isLetter && got === want - 0x20)) return false;
  }
  return true;
}

/**
 * RFC 3507 §4.2: splits `icap://host:port/path?query` (or a bare `/path?query`) into service and
 * query: the path without its leading and trailing slashes. Scanned by index (the scheme and
 * slash regexes were ≈ 2 % of a null-body REQMOD's JavaScript, bench/hot-path.ts).
 */
export function splitServiceUri(uri: string): { service: string; query: string } {
  let start = 0;
  // "icap://" or "icaps://" and the authority after it (up to the first "/" or "?").
  const scheme = startsWithFolded(uri, 'icap://') ? 7 : startsWithFolded(uri, 'icaps://') ? 8 : 0;
  if (scheme > 0) {
    start = scheme;
    while (start < uri.length && uri.charCodeAt(start) !== 0x2f && uri.charCodeAt(start) !== 0x3f) start++;
  }
  const q = uri.indexOf('?', start);
  let end = q === -1 ? uri.length : q;
  const query = q === -1 ? '' : uri.slice(q + 1);
  while (start < end && uri.charCodeAt(start) === 0x2f) start++;
  while (end > start && uri.charCodeAt(end - 1) === 0x2f) end--;
  return { service: uri.slice(start, end), query };
}

/**
 * The request line (RFC 3507 §4.3.2, HTTP's form: Method SP ICAP-URI SP ICAP-Version) as its three
 * parts, or null unless it is exactly three non-empty parts separated by single spaces (what
 * split(' ') with no empty part accepted).
 */
function splitRequestLine(line: string): [string, string, string] | null {
  const first = line.indexOf(' ');
  if (first <= 0) return null;
  const second = line.indexOf(' ', first + 1);
  if (second === -1 || second === first + 1 || second === line.length - 1) return null;
  if (line.indexOf(' ', second + 1) !== -1) return null;
  return [line.slice(0, first), line.slice(first + 1, second), line.slice(second + 1)];
}

/**
 * A parsed head keeps its latin1 text, not bytes. Nothing on a request's path reads the head's bytes
 * once it is parsed (tests do), so `raw` is rebuilt from the text on first use: latin1 gives every
 * byte back as it was.
 */
class ParsedRequestHead implements IcapRequestHead {
  readonly #text: string;
  #raw: Buffer | null = null;

  constructor(
    readonly method: IcapMethod,
    readonly uri: string,
    readonly service: string,
    readonly query: string,
    readonly version: string,
    readonly headers: HeaderList,
    readonly encapsulated: Encapsulated,
    readonly preview: number | null,
    readonly allow: ReadonlySet<string>,
    text: string,
  ) {
    this.#text = text;
  }

  get raw(): Buffer {
    return (this.#raw ??= Buffer.from(`${this.#text}\r\n\r\n`, 'latin1'));
  }
}

/**
 * The Allow tokens (RFC 3507 §4.6), one shared set per header value: clients send a handful of
 * distinct values ("204", "204, trailers", none), and a Set per request was ≈ 150 B of the ≈ 10 KB a
 * null-body REQMOD allocated then (every allocation brings the next scavenge pause closer, which is
 * what a p99 feels). The sets are never mutated (ReadonlySet); past ALLOW_SETS_MAX values, new
 * ones are built per request and not kept, so a client cannot grow the cache.
 */
const ALLOW_SETS = new Map<string, ReadonlySet<string>>();
const ALLOW_SETS_MAX = 64;

function allowTokens(headers: HeaderList): ReadonlySet<string> {
  const values = headers.getAll('Allow');
  // Several Allow lines are one list (RFC 7230 §3.2.2): joined by commas, they tokenize the same.
  const key = values.length === 1 ? values[0]! : values.join(',');
  let set = ALLOW_SETS.get(key);
  if (set === undefined) {
    set = headers.tokens('Allow');
    if (ALLOW_SETS.size < ALLOW_SETS_MAX) ALLOW_SETS.set(key, set);
  }
  return set;
}

/** `text` is the head (request line and headers) decoded as latin1, without the final CRLF CRLF. */
export function parseRequestHead(text: string, limits: DecoderLimits): IcapRequestHead {
  const block = parseHeaderBlock(text, limits.headerCount, 'ICAP request');
  const parts = splitRequestLine(block.startLine);
  if (parts === null) {
    throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed request line ${JSON.stringify(block.startLine.slice(0, 100))}`);
  }
  const [method, uri, version] = parts;
  if (version !== 'ICAP/1.0') {
    const v = VERSION.exec(version);
    if (v === null) throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed version ${JSON.stringify(version.slice(0, 20))}`);
    if (v[1] !== '1' || v[2] !== '0') throw new IcapProtocolError('ICAP_ERR_VERSION', `version ${version} not supported`);
  }
  if (!METHODS.has(method)) {
    if (!METHOD_TOKEN.test(method)) throw new IcapProtocolError('ICAP_ERR_MALFORMED', 'malformed method');
    throw new IcapProtocolError('ICAP_ERR_UNKNOWN_METHOD', `method ${method} not implemented`);
  }
  const icapMethod = method as IcapMethod;

  // Errata e1: Encapsulated decides whether a body exists; REQMOD/RESPMOD must carry it.
  const encapsulatedValue = block.headers.get('Encapsulated');
  let encapsulated: Encapsulated;
  if (encapsulatedValue === undefined) {
    if (icapMethod !== 'OPTIONS') throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `${method} without Encapsulated`);
    encapsulated = { headers: [], body: 'null-body', bodyOffset: 0 };
  } else {
    encapsulated = parseEncapsulated(encapsulatedValue, icapMethod, limits.httpHeaderBytes * 2);
  }
  for (const h of encapsulated.headers) {
    if (h.length > limits.httpHeaderBytes) {
      throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `${h.name} block of ${h.length} bytes exceeds ${limits.httpHeaderBytes}`);
    }
  }

  let preview: number | null = null;
  const previewValue = block.headers.get('Preview');
  if (previewValue !== undefined && icapMethod !== 'OPTIONS') {
    if (!/^\d{1,10}$/.test(previewValue)) throw new IcapProtocolError('ICAP_ERR_BAD_PREVIEW', `malformed Preview ${JSON.stringify(previewValue)}`);
    preview = Number(previewValue);
    if (preview > limits.previewBytes) {
      throw new IcapProtocolError('ICAP_ERR_BAD_PREVIEW', `Preview ${preview} exceeds the limit ${limits.previewBytes}`);
    }
  }

  const { service, query } = splitServiceUri(uri);
  return new ParsedRequestHead(icapMethod, uri, service, query, version, block.headers, encapsulated, preview, allowTokens(block.headers), text);
}
