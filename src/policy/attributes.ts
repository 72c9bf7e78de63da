/**
 * What rules and lists look at, gathered from one ICAP request. Request attributes are all known
 * once the headers are read; body facts arrive later (the first bytes give the file type, the
 * end gives the real size and the SHA-256). See select-rule.ts for how rules wait for them.
 */
import { trimOws } from '../../protocol/index.js';
import { normalizeAddress } from './ip-match.js';
import { headMatchText } from './match-text.js';
import type { FileType } from './file-type.js';
import { decodeUsername, userCandidates } from './username.js';
import { effectiveUrl, requestHost } from './url.js';
import { partialRange } from './byte-range.js';

/** Case-insensitive header lookup (protocol's HeaderList fits). */
export interface HeaderLookup {
  getAll(name: string): readonly string[];
  get(name: string): string | undefined;
}

export const HEADER_SOURCES = ['icap', 'request', 'response'] as const;
export type HeaderSource = (typeof HEADER_SOURCES)[number];

export interface RequestAttributes {
  readonly icapMethod: 'REQMOD' | 'RESPMOD';
  /** The ICAP client's address (the proxy). */
  readonly peer: string;
  /** The HTTP client: X-Client-IP when the proxy sent it, else the ICAP peer. */
  readonly client: string;
  /** User name forms to match (raw and decoded), as text (match-text.ts); empty when no user header was sent. */
  readonly users: readonly string[];
  /** The user name as logged: decoded when it was base64. */
  readonly user?: string;
  readonly httpMethod?: string;
  /** Lower-case, without port, A-labels for an IDN (url.ts hostOnly). */
  readonly host?: string;
  /** Absolute, scheme and authority lower-cased. */
  readonly url?: string;
  /** Media type of the scanned message (response for RESPMOD, request for REQMOD), lower-case, no parameters; text (match-text.ts). */
  readonly contentType?: string;
  /** Content-Length of the scanned message, when it declared one. */
  readonly declaredSize?: number;
  /** The scanned body is a piece of a file: its Content-Range, or why it has none (byte-range.ts). */
  readonly partial?: string;
  readonly headers: { readonly [S in HeaderSource]?: HeaderLookup };
}

/** What is known about the body so far. */
export interface BodyFacts {
  /**
   * The file types of what the body holds: undefined until known, empty when it has no bytes. One
   * type for a plain body; for an encoded or multipart one, the decoded body's or each part's
   * (src/pipeline/prepared-content.ts), which is what the user gets.
   */
  readonly fileTypes?: readonly FileType[];
  /** The real size, known once the body is complete. */
  readonly size?: number;
  /** Lower-case hex, once the body is complete and the service has hash lists. */
  readonly sha256?: string;
  /** The decoded body's digest, when it had a Content-Encoding: allow and deny lists both see it. */
  readonly decodedSha256?: string;
  /** Each part's digest, for a multipart upload: deny lists only (one known part says nothing of the rest). */
  readonly pieceSha256s?: readonly string[];
  /** The whole body has been read (or there is none). */
  readonly complete: boolean;
}

export interface HttpHeadView {
  readonly startLine: string;
  readonly headers: HeaderLookup;
}

export interface AttributeSources {
  readonly icapMethod: 'REQMOD' | 'RESPMOD';
  readonly peer: string;
  readonly icapHeaders: HeaderLookup;
  readonly reqHdr: HttpHeadView | null;
  readonly resHdr: HttpHeadView | null;
}

export function requestAttributes(src: AttributeSources): RequestAttributes {
  const icap = src.icapHeaders;
  const clientIpHeader = icap.get('X-Client-IP');
  const clientIp = clientIpHeader === undefined ? undefined : trimOws(clientIpHeader);
  const rawUser = icap.get('X-Client-Username') ?? icap.get('X-Authenticated-User');
  const [method, target] = src.reqHdr?.startLine.split(' ') ?? [];
  const hostHeader = src.reqHdr?.headers.get('Host');
  // The message whose body is scanned: the response in RESPMOD, the request in REQMOD.
  const message = src.icapMethod === 'RESPMOD' ? src.resHdr : src.reqHdr;
  // Decoded before lower-casing: toLowerCase() on the bytes would fold UTF-8 lead bytes (url.ts).
  const rawType = message?.headers.get('Content-Type')?.split(';')[0];
  const contentType = rawType === undefined ? undefined : headMatchText(trimOws(rawType)).toLowerCase();
  const declaredSize = message ? declaredLength(message.headers.getAll('Content-Length')) : undefined;
  const host = requestHost(target, hostHeader);
  const user = rawUser === undefined ? undefined : decodeUsername(rawUser);
  const partial = partialRange(src.icapMethod, src.reqHdr, src.resHdr);
  return {
    icapMethod: src.icapMethod,
    peer: normalizeAddress(src.peer),
    client: normalizeAddress(clientIp !== undefined && clientIp !== '' ? clientIp : src.peer),
    users: userCandidates(rawUser),
    ...(user !== undefined && user !== '' && { user }),
    ...(method !== undefined && method !== '' && { httpMethod: method }),
    ...(host !== undefined && host !== '' && { host }),
    ...(target !== undefined && { url: effectiveUrl(target, hostHeader) }),
    ...(contentType !== undefined && contentType !== '' && { contentType }),
    ...(declaredSize !== undefined && { declaredSize }),
    ...(partial !== undefined && { partial }),
    headers: {
      icap,
      ...(src.reqHdr && { request: src.reqHdr.headers }),
      ...(src.resHdr && { response: src.resHdr.headers }),
    },
  };
}

/** One Content-Length, or several equal ones (RFC 9110 §8.6); anything else declares nothing. */
function declaredLength(values: readonly string[]): number | undefined {
  const distinct = new Set(values.flatMap((v) => v.split(',')).map(trimOws));
  if (distinct.size !== 1) return undefined;
  const [only] = distinct;
  return only !== undefined && /^\d{1,16}$/.test(only) ? Number(only) : undefined;
}
