import type { Encapsulated, HeaderSectionName } from './encapsulated.js';
import type { HeaderList } from './header-list.js';

export type IcapMethod = 'OPTIONS' | 'REQMOD' | 'RESPMOD';

/** The ICAP request line and headers (RFC 3507 §4.3.2), with the raw bytes kept. */
export interface IcapRequestHead {
  readonly method: IcapMethod;
  /** The request URI as sent, e.g. `icap://127.0.0.1:1344/respmod?mode=x`. */
  readonly uri: string;
  /** The service path without leading or trailing slashes, e.g. `respmod`. */
  readonly service: string;
  /** The query string without `?`, or ''. */
  readonly query: string;
  readonly version: string;
  readonly headers: HeaderList;
  /** Request line and headers exactly as received, including the final empty line. */
  readonly raw: Buffer;
  /** Absent only for OPTIONS without Encapsulated (errata e1: no Encapsulated, no body). */
  readonly encapsulated: Encapsulated;
  /** The Preview header's value (§4.5), or null when no preview is offered. */
  readonly preview: number | null;
  /** Lowercase tokens of the Allow header (`204`, `206`, `trailers`). */
  readonly allow: ReadonlySet<string>;
}

/** One encapsulated HTTP header block: raw bytes for echoing, a parsed view for decisions. */
export interface HttpHead {
  readonly section: HeaderSectionName;
  /** Exactly the bytes the client sent, ending in CRLF CRLF. */
  readonly raw: Buffer;
  /** `GET /x HTTP/1.1` or `HTTP/1.1 200 OK`. */
  readonly startLine: string;
  readonly headers: HeaderList;
}

export type DecoderEvent =
  | { readonly type: 'request-head'; readonly head: IcapRequestHead }
  | { readonly type: 'http-head'; readonly head: HttpHead }
  /** All header blocks read; `body` is null for null-body messages. */
  | { readonly type: 'headers-end'; readonly body: 'req-body' | 'res-body' | 'opt-body' | null }
  /** Body bytes: a view into the input, valid until the handler returns unless retained. */
  | { readonly type: 'body'; readonly data: Buffer }
  /** The zero chunk that ends a preview (§4.5); with `ieof` the preview was the whole body. */
  | { readonly type: 'preview-end'; readonly ieof: boolean }
  /** The last chunk; `trailers` holds the raw trailer lines (errata e2) or null. */
  | { readonly type: 'body-end'; readonly trailers: Buffer | null }
  /** The message is complete; the next bytes belong to the next request. */
  | { readonly type: 'message-end' };

export interface DecoderLimits {
  /** Request line + ICAP headers, including the empty line. */
  readonly icapHeaderBytes: number;
  /** One encapsulated HTTP header block. */
  readonly httpHeaderBytes: number;
  /** Headers in any one block. */
  readonly headerCount: number;
  /** A chunk-size line including extensions and CRLF; also bounds a trailer line. */
  readonly chunkLineBytes: number;
  /** Body bytes of one message (preview included). */
  readonly bodyBytes: number;
  /** The largest Preview value accepted. */
  readonly previewBytes: number;
}

export const DEFAULT_LIMITS: DecoderLimits = Object.freeze({
  icapHeaderBytes: 65536,
  httpHeaderBytes: 65536,
  headerCount: 128,
  chunkLineBytes: 1024,
  bodyBytes: 16 * 1024 ** 3,
  previewBytes: 65536,
});
