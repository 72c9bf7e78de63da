/**
 * The ICAP request head: request line (RFC 3507 §4.3.2), headers, and the checks that decide
 * how the rest of the message is framed (Encapsulated §4.4.1, Preview §4.5).
 */
import { parseEncapsulated, type Encapsulated } from './encapsulated.js';
import { IcapProtocolError } from './errors.js';
import { parseHeaderBlock } from './header-block.js';
import type { DecoderLimits, IcapMethod, IcapRequestHead } from './types.js';

const METHODS: ReadonlySet<string> = new Set(['OPTIONS', 'REQMOD', 'RESPMOD']);
const METHOD_TOKEN = /^[A-Z][A-Z0-9_-]*$/i;
const VERSION = /^ICAP\/(\d+)\.(\d+)$/;

/** Splits `icap://host:port/path?query` (or a bare `/path?query`) into service and query. */
export function splitServiceUri(uri: string): { service: string; query: string } {
  let rest = uri;
  const scheme = /^icaps?:\/\/[^/?]*/i.exec(rest);
  if (scheme !== null) rest = rest.slice(scheme[0].length);
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q + 1);
  return { service: path.replace(/^\/+|\/+$/g, ''), query };
}

/** `raw` is the whole head including the final CRLF CRLF. */
export function parseRequestHead(raw: Buffer, limits: DecoderLimits): IcapRequestHead {
  const text = raw.toString('latin1', 0, raw.length - 4);
  const block = parseHeaderBlock(text, limits.headerCount, 'ICAP request');
  const parts = block.startLine.split(' ');
  if (parts.length !== 3 || parts.some((p) => p === '')) {
    throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed request line ${JSON.stringify(block.startLine.slice(0, 100))}`);
  }
  const [method, uri, version] = parts as [string, string, string];
  const v = VERSION.exec(version);
  if (v === null) throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed version ${JSON.stringify(version.slice(0, 20))}`);
  if (v[1] !== '1' || v[2] !== '0') throw new IcapProtocolError('ICAP_ERR_VERSION', `version ${version} not supported`);
  if (!METHOD_TOKEN.test(method)) throw new IcapProtocolError('ICAP_ERR_MALFORMED', 'malformed method');
  if (!METHODS.has(method)) throw new IcapProtocolError('ICAP_ERR_UNKNOWN_METHOD', `method ${method} not implemented`);
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
  return {
    method: icapMethod,
    uri,
    service,
    query,
    version,
    headers: block.headers,
    raw,
    encapsulated,
    preview,
    allow: block.headers.tokens('Allow'),
  };
}
