/**
 * ICAP request heads as a client sends them (RFC 3507 §4.3.2, §4.10.1, §4.5): the OPTIONS probe
 * and the head of a REQMOD/RESPMOD with its encapsulated HTTP header blocks. The body follows as
 * chunks (chunkHeader / encodeChunk / encodeLastChunk in encoder.ts; `ieof` on the zero chunk
 * when the preview holds the whole body).
 */
import { encodeRequestHead, type HeaderPairs } from './encoder.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** CR, LF or NUL in a value would let text from elsewhere (a URL, a host name) forge headers. */
const UNSAFE_VALUE = /[\r\n\0]/;

function checkHeaders(headers: HeaderPairs): void {
  for (const [name, value] of headers) {
    if (!TOKEN.test(name)) throw new RangeError(`invalid ICAP header name ${JSON.stringify(name)}`);
    if (UNSAFE_VALUE.test(value)) throw new RangeError(`ICAP header ${name} has CR, LF or NUL in its value`);
  }
}

function checkUri(uri: string): void {
  if (/[\s\0]/.test(uri) || uri === '') throw new RangeError(`invalid ICAP request URI ${JSON.stringify(uri)}`);
}

export interface OptionsRequestInit {
  /** `icap://host:port/service`. */
  readonly uri: string;
  /** §4.3.1: Host is required in every request. */
  readonly host: string;
  readonly headers?: HeaderPairs;
}

/** §4.10.1: an OPTIONS request; errata e1: no body, so `Encapsulated: null-body=0`. */
export function encodeOptionsRequest(init: OptionsRequestInit): Buffer {
  checkUri(init.uri);
  const headers: HeaderPairs = [['Host', init.host], ...(init.headers ?? [])];
  checkHeaders(headers);
  return encodeRequestHead({ method: 'OPTIONS', uri: init.uri, headers, body: null });
}

export interface AdaptationRequestInit {
  readonly method: 'REQMOD' | 'RESPMOD';
  readonly uri: string;
  readonly host: string;
  /** §4.5: the number of body bytes sent before 100 Continue; null = no preview. */
  readonly preview: number | null;
  /** §4.6: the client accepts 204 outside a preview. */
  readonly allow204: boolean;
  /** Further headers (X-Client-IP…); never Encapsulated, Preview, Allow or Host. */
  readonly headers?: HeaderPairs;
  /** Encapsulated HTTP blocks, each ending in CRLF CRLF. Errata e4: REQMOD needs reqHdr or a body. */
  readonly reqHdr?: Buffer | null;
  readonly resHdr?: Buffer | null;
  /** False for a message without a body (null-body). */
  readonly hasBody: boolean;
}

/** The head of a REQMOD/RESPMOD request, Encapsulated offsets taken from the blocks' real lengths. */
export function encodeAdaptationRequestHead(init: AdaptationRequestInit): Buffer {
  checkUri(init.uri);
  if (init.preview !== null && (!Number.isSafeInteger(init.preview) || init.preview < 0)) {
    throw new RangeError(`invalid preview size ${init.preview}`);
  }
  for (const block of [init.reqHdr, init.resHdr]) {
    if (block && (block.length < 4 || block.subarray(-4).toString('latin1') !== '\r\n\r\n')) {
      throw new RangeError('an encapsulated HTTP head must end with CRLF CRLF');
    }
  }
  const headers: (readonly [string, string])[] = [['Host', init.host]];
  if (init.allow204) headers.push(['Allow', '204']);
  if (init.preview !== null && init.hasBody) headers.push(['Preview', String(init.preview)]);
  headers.push(...(init.headers ?? []));
  checkHeaders(headers);
  const isReqmod = init.method === 'REQMOD';
  return encodeRequestHead({
    method: init.method,
    uri: init.uri,
    headers,
    reqHdr: init.reqHdr ?? null,
    // §4.4.1: a REQMOD request encapsulates no response.
    resHdr: isReqmod ? null : (init.resHdr ?? null),
    body: init.hasBody ? (isReqmod ? 'req-body' : 'res-body') : null,
  });
}
