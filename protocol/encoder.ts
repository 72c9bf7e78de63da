/**
 * ICAP serializers: plain functions from a description to bytes (STYLE.md "Serializers are plain
 * functions"). Constant messages are built once.
 */
import type { BodySectionName } from './encapsulated.js';
import type { IcapMethod } from './types.js';

/** RFC 3507 §4.3.3 reason phrases; others fall back to HTTP's. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: 'Continue',
  200: 'OK',
  204: 'No Content',
  206: 'Partial Content',
  400: 'Bad Request',
  404: 'ICAP Service Not Found',
  405: 'Method Not Allowed For Service',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  418: 'Bad Composition',
  500: 'Server Error',
  501: 'Method Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Overloaded',
  505: 'ICAP Version Not Supported',
};

export type HeaderPairs = readonly (readonly [string, string])[];

/** §4.5: the interim answer to a preview. Never sent after `ieof`. */
export const CONTINUE_100 = Buffer.from('ICAP/1.0 100 Continue\r\n\r\n', 'latin1');
/** §4.4.2 chunked encoding: the last chunk with no trailers. */
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
export const CRLF = Buffer.from('\r\n', 'latin1');

function headerLines(headers: HeaderPairs): string {
  let out = '';
  for (const [name, value] of headers) out += `${name}: ${value}\r\n`;
  return out;
}

interface Encapsulation {
  readonly reqHdr?: Buffer | null | undefined;
  readonly resHdr?: Buffer | null | undefined;
  /** The body tag, or null for null-body. */
  readonly body: Exclude<BodySectionName, 'null-body'> | null;
}

/** §4.4.1: the Encapsulated value for the given blocks, with offsets from their real lengths. */
export function encapsulatedValue(e: Encapsulation): string {
  const parts: string[] = [];
  let offset = 0;
  if (e.reqHdr) {
    parts.push(`req-hdr=${offset}`);
    offset += e.reqHdr.length;
  }
  if (e.resHdr) {
    parts.push(`res-hdr=${offset}`);
    offset += e.resHdr.length;
  }
  parts.push(`${e.body ?? 'null-body'}=${offset}`);
  return parts.join(', ');
}

export interface ResponseHeadInit extends Encapsulation {
  readonly status: number;
  readonly reason?: string;
  /** ICAP headers other than Encapsulated, in order. */
  readonly headers: HeaderPairs;
}

/** Status line, headers, Encapsulated and the encapsulated HTTP header blocks. */
export function encodeResponseHead(init: ResponseHeadInit): Buffer {
  const reason = init.reason ?? STATUS_TEXT[init.status] ?? 'Unknown';
  return withEncapsulated(`ICAP/1.0 ${init.status} ${reason}\r\n`, init.headers, init);
}

export interface RequestHeadInit extends Encapsulation {
  readonly method: IcapMethod;
  readonly uri: string;
  readonly headers: HeaderPairs;
}

/** An ICAP request head: for tests, the bench client and upstream-ICAP backends. */
export function encodeRequestHead(init: RequestHeadInit): Buffer {
  return withEncapsulated(`${init.method} ${init.uri} ICAP/1.0\r\n`, init.headers, init);
}

/** First line, headers, Encapsulated, then the HTTP header blocks at the offsets it names. */
function withEncapsulated(firstLine: string, headers: HeaderPairs, e: Encapsulation): Buffer {
  const head = `${firstLine}${headerLines(headers)}Encapsulated: ${encapsulatedValue(e)}\r\n\r\n`;
  const parts: Buffer[] = [Buffer.from(head, 'latin1')];
  if (e.reqHdr) parts.push(e.reqHdr);
  if (e.resHdr) parts.push(e.resHdr);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** The size line of one chunk (§4.4.2, RFC 2616 §3.6.1); write it, the data, then CRLF. */
export function chunkHeader(size: number, extension?: string): Buffer {
  return Buffer.from(`${size.toString(16)}${extension ? `; ${extension}` : ''}\r\n`, 'latin1');
}

/** One whole chunk as a single buffer (copies; for small data and tests). */
export function encodeChunk(data: Buffer): Buffer {
  return Buffer.concat([chunkHeader(data.length), data, CRLF]);
}

/** The last chunk, with optional extension (`ieof`, `use-original-body=N`) and raw trailer lines. */
export function encodeLastChunk(extension?: string | null, trailers?: Buffer | null): Buffer {
  if (!extension && !trailers) return LAST_CHUNK;
  return Buffer.concat([chunkHeader(0, extension ?? undefined), trailers ?? Buffer.alloc(0), CRLF]);
}

/**
 * The last chunk of a 206 Partial Content body (icap-extensions.md §C): `use-original-body=N`
 * tells the client to append its own copy of the original body from byte N on. N = 0 with no
 * data chunks before it means "these headers, the original body".
 */
export function encodeUseOriginalBody(offset: number): Buffer {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`use-original-body offset must be a non-negative integer, got ${offset}`);
  return encodeLastChunk(`use-original-body=${offset}`);
}

/** A response with no body: errors, 204, OPTIONS. */
export function encodeSimpleResponse(status: number, headers: HeaderPairs): Buffer {
  return encodeResponseHead({ status, headers, body: null });
}
