/**
 * Incremental ICAP response decoder, for the client side (an upstream ICAP server as a scanner).
 * Fed arbitrary slices of a connection's bytes, it emits events and keeps only the unconsumed
 * remainder (STYLE.md "Parsing bytes"). One response, RFC 3507 §4.3.3, §4.4:
 *
 *   response-head ──► http-head × N ──► (no body: null-body, or no Encapsulated) ──► message-end
 *                                   └─► chunk-size ⇄ chunk-data → chunk-end
 *                                           │ zero chunk
 *                                           ▼
 *                                       trailers ──► body-end ──► message-end
 *
 * A 100 Continue (§4.5) is a complete message of its own: response-head, then message-end; the
 * final response follows on the same connection. Limits are enforced while parsing, before bytes
 * are buffered past them. Errors are thrown as IcapProtocolError from push(); the decoder is
 * then dead (the connection must be closed).
 */
import { IcapProtocolError } from './errors.js';
import { parseHeaderBlock } from './header-block.js';
import { parseResponseHead, type IcapResponseHead, type ResponseBodySection } from './response-head.js';
import { DEFAULT_LIMITS, type DecoderLimits, type HttpHead } from './types.js';

export type ResponseDecoderLimits = Pick<DecoderLimits, 'icapHeaderBytes' | 'httpHeaderBytes' | 'headerCount' | 'chunkLineBytes' | 'bodyBytes'>;

export type ResponseDecoderEvent =
  | { readonly type: 'response-head'; readonly head: IcapResponseHead }
  | { readonly type: 'http-head'; readonly head: HttpHead }
  /** All header blocks read; `body` is null when no body follows. */
  | { readonly type: 'headers-end'; readonly body: ResponseBodySection | null }
  /** Body bytes: a view into the input, valid until the handler returns unless retained. */
  | { readonly type: 'body'; readonly data: Buffer }
  /** The last chunk: its extension text (e.g. `use-original-body=0`, §C of icap-extensions.md) and raw trailer lines. */
  | { readonly type: 'body-end'; readonly extension: string | null; readonly trailers: Buffer | null }
  /** The response is complete; the next bytes belong to the next response. */
  | { readonly type: 'message-end' };

export type ResponseDecoderEventHandler = (event: ResponseDecoderEvent) => void;

type State = 'response-head' | 'http-head' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'failed';

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const CHUNK_LINE = /^([0-9A-Fa-f]+)[ \t]*(?:;(.*))?$/;
/** 13 hex digits = 2^52: every declared size stays an exact JavaScript number. */
const MAX_HEX_DIGITS = 13;

export class IcapResponseDecoder {
  readonly #limits: ResponseDecoderLimits;
  readonly #onEvent: ResponseDecoderEventHandler;
  #state: State = 'response-head';
  #pending: Buffer = EMPTY;
  #parsing = false;
  /** response-head: where to resume the search for CRLF CRLF, so slow peers cost O(n). */
  #scanFrom = 0;

  // The response being decoded.
  #head: IcapResponseHead | null = null;
  #section = 0;
  #bodyBytes = 0;
  #chunkRemaining = 0;
  #extension: string | null = null;
  #trailers: Buffer[] = [];
  #trailerBytes = 0;

  constructor(onEvent: ResponseDecoderEventHandler, limits: ResponseDecoderLimits = DEFAULT_LIMITS) {
    this.#onEvent = onEvent;
    this.#limits = limits;
  }

  /** True between responses with nothing buffered: the connection holds no stray bytes. */
  get idle(): boolean {
    return this.#state === 'response-head' && this.#pending.length === 0;
  }

  /** True once push() has thrown; nothing more is decoded. */
  get failed(): boolean {
    return this.#state === 'failed';
  }

  push(chunk: Buffer): void {
    if (this.#state === 'failed') return;
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    if (this.#parsing) return; // re-entered from an event handler; the outer loop carries on
    this.#parsing = true;
    try {
      while (this.#step()) {
        /* each step consumes input or changes state */
      }
    } catch (err) {
      this.#state = 'failed';
      this.#pending = EMPTY;
      throw err;
    } finally {
      this.#parsing = false;
    }
  }

  #consume(n: number): void {
    this.#pending = n >= this.#pending.length ? EMPTY : this.#pending.subarray(n);
  }

  /** Returns false when it needs more input. */
  #step(): boolean {
    switch (this.#state) {
      case 'response-head':
        return this.#readResponseHead();
      case 'http-head':
        return this.#readHttpHead();
      case 'chunk-size':
        return this.#readChunkSize();
      case 'chunk-data':
        return this.#readChunkData();
      case 'chunk-end':
        return this.#readChunkEnd();
      case 'trailers':
        return this.#readTrailers();
      case 'failed':
        return false;
    }
  }

  #readResponseHead(): boolean {
    if (this.#pending.length === 0) return false;
    const end = this.#pending.indexOf(CRLFCRLF, Math.max(0, this.#scanFrom - 3));
    const tooLarge = (): never => {
      throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `ICAP response head exceeds ${this.#limits.icapHeaderBytes} bytes`);
    };
    if (end === -1) {
      if (this.#pending.length > this.#limits.icapHeaderBytes) tooLarge();
      this.#scanFrom = this.#pending.length;
      return false;
    }
    if (end + 4 > this.#limits.icapHeaderBytes) tooLarge();
    // Copied: the head outlives this input buffer, and must not pin a large socket read.
    const raw = Buffer.from(this.#pending.subarray(0, end + 4));
    this.#consume(end + 4);
    this.#scanFrom = 0;
    const head = parseResponseHead(raw, this.#limits);
    this.#head = head;
    this.#section = 0;
    this.#state = 'http-head';
    this.#onEvent({ type: 'response-head', head });
    return true;
  }

  #readHttpHead(): boolean {
    const head = this.#head!;
    const sections = head.encapsulated.headers;
    if (this.#section < sections.length) {
      const { name, length } = sections[this.#section]!;
      if (this.#pending.length < length) return false;
      // §4.4.1: the offsets give each block's exact length; it must end with its empty line there.
      const end = this.#pending.indexOf(CRLFCRLF);
      if (end !== length - 4) {
        throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `${name} block does not end at the offset Encapsulated gives (${length} bytes)`);
      }
      const raw = Buffer.from(this.#pending.subarray(0, length));
      this.#consume(length);
      this.#section++;
      const block = parseHeaderBlock(raw.toString('latin1', 0, length - 4), this.#limits.headerCount, name);
      if (block.startLine === '') throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${name} block has no start line`);
      this.#onEvent({ type: 'http-head', head: { section: name, raw, startLine: block.startLine, headers: block.headers } });
      return true;
    }
    const body = head.encapsulated.body;
    if (body === null) {
      this.#finishMessage();
      this.#onEvent({ type: 'headers-end', body: null });
      this.#onEvent({ type: 'message-end' });
      return true;
    }
    this.#bodyBytes = 0;
    this.#state = 'chunk-size';
    this.#onEvent({ type: 'headers-end', body });
    return true;
  }

  #readChunkSize(): boolean {
    const end = this.#pending.indexOf(CRLF);
    const tooLong = (): never => {
      throw new IcapProtocolError('ICAP_ERR_CHUNK_LINE_TOO_LONG', `chunk-size line exceeds ${this.#limits.chunkLineBytes} bytes`);
    };
    if (end === -1) {
      if (this.#pending.length >= this.#limits.chunkLineBytes) tooLong();
      return false;
    }
    if (end + 2 > this.#limits.chunkLineBytes) tooLong();
    const line = this.#pending.toString('latin1', 0, end);
    this.#consume(end + 2);
    const match = CHUNK_LINE.exec(line);
    if (match === null) throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
    const digits = match[1]!.replace(/^0+(?=.)/, '');
    if (digits.length > MAX_HEX_DIGITS) throw new IcapProtocolError('ICAP_ERR_BODY_TOO_LARGE', `chunk size ${match[1]} is too large`);
    const size = parseInt(digits, 16);
    if (this.#bodyBytes + size > this.#limits.bodyBytes) {
      throw new IcapProtocolError('ICAP_ERR_BODY_TOO_LARGE', `response body exceeds ${this.#limits.bodyBytes} bytes`);
    }
    if (size === 0) {
      this.#extension = match[2] === undefined ? null : match[2].trim();
      this.#trailers = [];
      this.#trailerBytes = 0;
      this.#state = 'trailers';
      return true;
    }
    this.#chunkRemaining = size;
    this.#state = 'chunk-data';
    return true;
  }

  #readChunkData(): boolean {
    if (this.#pending.length === 0) return false;
    const n = Math.min(this.#chunkRemaining, this.#pending.length);
    const data = this.#pending.subarray(0, n);
    this.#consume(n);
    this.#chunkRemaining -= n;
    this.#bodyBytes += n;
    if (this.#chunkRemaining === 0) this.#state = 'chunk-end';
    this.#onEvent({ type: 'body', data });
    return true;
  }

  #readChunkEnd(): boolean {
    if (this.#pending.length < 2) return false;
    if (this.#pending[0] !== 0x0d || this.#pending[1] !== 0x0a) {
      throw new IcapProtocolError('ICAP_ERR_MALFORMED', 'chunk data not followed by CRLF');
    }
    this.#consume(2);
    this.#state = 'chunk-size';
    return true;
  }

  /** After the zero chunk: trailer lines (errata e2) up to an empty line. */
  #readTrailers(): boolean {
    const end = this.#pending.indexOf(CRLF);
    const tooLarge = (): never => {
      throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `trailers exceed ${this.#limits.httpHeaderBytes} bytes`);
    };
    if (end === -1) {
      if (this.#pending.length > this.#limits.httpHeaderBytes - this.#trailerBytes) tooLarge();
      return false;
    }
    if (end > 0) {
      this.#trailerBytes += end + 2;
      if (this.#trailerBytes > this.#limits.httpHeaderBytes) tooLarge();
      if (this.#trailers.length >= this.#limits.headerCount) {
        throw new IcapProtocolError('ICAP_ERR_TOO_MANY_HEADERS', `more than ${this.#limits.headerCount} trailers`);
      }
      this.#trailers.push(Buffer.from(this.#pending.subarray(0, end + 2)));
      this.#consume(end + 2);
      return true;
    }
    this.#consume(2);
    const trailers = this.#trailers.length === 0 ? null : Buffer.concat(this.#trailers);
    const extension = this.#extension;
    this.#trailers = [];
    this.#finishMessage();
    this.#onEvent({ type: 'body-end', extension, trailers });
    this.#onEvent({ type: 'message-end' });
    return true;
  }

  /** Back to reading a response head; called before message-end is emitted. */
  #finishMessage(): void {
    this.#state = 'response-head';
    this.#head = null;
    this.#extension = null;
    this.#scanFrom = 0;
  }
}
