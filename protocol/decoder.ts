/**
 * Incremental ICAP request decoder: fed arbitrary slices of a connection's bytes, it emits
 * DecoderEvents and keeps only the unconsumed remainder (STYLE.md "Parsing bytes").
 *
 * One message, RFC 3507 §4.4 and §4.5:
 *
 *   request-head ──► http-head × N ──► (null-body) ───────────────────────────► message-end
 *                                  └─► chunk-size ⇄ chunk-data → chunk-end
 *                                          │ zero chunk
 *                                          ▼
 *                                      trailers ──► (not in preview) body-end ► message-end
 *                                          │ in preview, ieof: preview-end, body-end, message-end
 *                                          └ in preview, no ieof: preview-end ► await-continue
 *   await-continue ── continueBody() ──► chunk-size (rest of the body)
 *                  └─ skipBody() ──────► message-end (the server answered after the preview)
 *
 * Limits are enforced while parsing, before bytes are buffered past them. Errors are thrown as
 * IcapProtocolError from push() (or continueBody/skipBody/resume); the decoder is then dead.
 */
import { IcapProtocolError } from './errors.js';
import { parseHeaderBlock } from './header-block.js';
import { parseRequestHead } from './request-head.js';
import { DEFAULT_LIMITS, type DecoderEvent, type DecoderLimits, type IcapRequestHead } from './types.js';

type State =
  | 'request-head'
  | 'http-head'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-end'
  | 'trailers'
  | 'await-continue'
  | 'failed';

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const CHUNK_LINE = /^([0-9A-Fa-f]+)[ \t]*(?:;(.*))?$/;
/** 13 hex digits = 2^52: every declared size stays an exact JavaScript number. */
const MAX_HEX_DIGITS = 13;

export type DecoderEventHandler = (event: DecoderEvent) => void;

export class IcapDecoder {
  readonly #limits: DecoderLimits;
  readonly #onEvent: DecoderEventHandler;
  #state: State = 'request-head';
  #pending: Buffer = EMPTY;
  #paused = false;
  #parsing = false;
  /** request-head: where to resume the search for CRLF CRLF, so slow clients cost O(n). */
  #scanFrom = 0;

  // The message being decoded.
  #head: IcapRequestHead | null = null;
  #section = 0;
  #inPreview = false;
  #previewBytes = 0;
  #bodyBytes = 0;
  #chunkRemaining = 0;
  #ieof = false;
  #trailers: Buffer[] = [];
  #trailerBytes = 0;

  constructor(onEvent: DecoderEventHandler, limits: DecoderLimits = DEFAULT_LIMITS) {
    this.#onEvent = onEvent;
    this.#limits = limits;
  }

  /** True while the decoder waits for the server to decide after a preview (§4.5). */
  get awaitingContinue(): boolean {
    return this.#state === 'await-continue';
  }

  /** True between messages with nothing buffered: a close now loses no request. */
  get idle(): boolean {
    return this.#state === 'request-head' && this.#pending.length === 0;
  }

  push(chunk: Buffer): void {
    if (this.#state === 'failed') return;
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#run();
  }

  /** Stop emitting events (input is still buffered) until resume(). */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#run();
  }

  /** After a preview without ieof, the server sent 100 Continue: read the rest of the body. */
  continueBody(): void {
    this.#expectAwaiting('continueBody');
    this.#inPreview = false;
    this.#state = 'chunk-size';
    this.#run();
  }

  /** After a preview without ieof, the server answered finally: the client sends no more body. */
  skipBody(): void {
    this.#expectAwaiting('skipBody');
    this.#finishMessage();
    this.#emit({ type: 'message-end' });
    this.#run();
  }

  #expectAwaiting(name: string): void {
    if (this.#state !== 'await-continue') throw new Error(`IcapDecoder.${name}() called in state ${this.#state}`);
  }

  #run(): void {
    if (this.#parsing) return; // re-entered from an event handler; the outer loop carries on
    this.#parsing = true;
    try {
      while (!this.#paused && this.#step()) {
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

  #emit(event: DecoderEvent): void {
    this.#onEvent(event);
  }

  #consume(n: number): void {
    this.#pending = n >= this.#pending.length ? EMPTY : this.#pending.subarray(n);
  }

  /** Returns false when it needs more input (or must wait for the server). */
  #step(): boolean {
    switch (this.#state) {
      case 'request-head':
        return this.#readRequestHead();
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
      case 'await-continue':
      case 'failed':
        return false;
    }
  }

  #readRequestHead(): boolean {
    // RFC 2616 §4.1 robustness, which ICAP inherits: ignore empty lines before a request line.
    while (this.#pending.length >= 2 && this.#pending[0] === 0x0d && this.#pending[1] === 0x0a) this.#consume(2);
    if (this.#pending.length === 0) return false;
    const end = this.#pending.indexOf(CRLFCRLF, Math.max(0, this.#scanFrom - 3));
    if (end === -1) {
      if (this.#pending.length > this.#limits.icapHeaderBytes) {
        throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `ICAP header block exceeds ${this.#limits.icapHeaderBytes} bytes`);
      }
      this.#scanFrom = this.#pending.length;
      return false;
    }
    const length = end + 4;
    if (length > this.#limits.icapHeaderBytes) {
      throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `ICAP header block exceeds ${this.#limits.icapHeaderBytes} bytes`);
    }
    // Copied: the head outlives this input buffer, and must not pin a large socket read.
    const raw = Buffer.from(this.#pending.subarray(0, length));
    this.#consume(length);
    this.#scanFrom = 0;
    const head = parseRequestHead(raw, this.#limits);
    this.#head = head;
    this.#section = 0;
    this.#state = 'http-head';
    this.#emit({ type: 'request-head', head });
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
        throw new IcapProtocolError(
          'ICAP_ERR_BAD_ENCAPSULATED',
          `${name} block does not end at the offset Encapsulated gives (${length} bytes)`,
        );
      }
      const raw = Buffer.from(this.#pending.subarray(0, length));
      this.#consume(length);
      this.#section++;
      const block = parseHeaderBlock(raw.toString('latin1', 0, length - 4), this.#limits.headerCount, name);
      if (block.startLine === '') throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${name} block has no start line`);
      this.#emit({ type: 'http-head', head: { section: name, raw, startLine: block.startLine, headers: block.headers } });
      return true;
    }
    const body = head.encapsulated.body;
    if (body === 'null-body') {
      this.#finishMessage();
      this.#emit({ type: 'headers-end', body: null });
      this.#emit({ type: 'message-end' });
      return true;
    }
    this.#inPreview = head.preview !== null;
    this.#previewBytes = 0;
    this.#bodyBytes = 0;
    this.#state = 'chunk-size';
    this.#emit({ type: 'headers-end', body });
    return true;
  }

  #readChunkSize(): boolean {
    const end = this.#pending.indexOf(CRLF);
    if (end === -1) {
      if (this.#pending.length >= this.#limits.chunkLineBytes) {
        throw new IcapProtocolError('ICAP_ERR_CHUNK_LINE_TOO_LONG', `chunk-size line exceeds ${this.#limits.chunkLineBytes} bytes`);
      }
      return false;
    }
    if (end + 2 > this.#limits.chunkLineBytes) {
      throw new IcapProtocolError('ICAP_ERR_CHUNK_LINE_TOO_LONG', `chunk-size line exceeds ${this.#limits.chunkLineBytes} bytes`);
    }
    const line = this.#pending.toString('latin1', 0, end);
    this.#consume(end + 2);
    const match = CHUNK_LINE.exec(line);
    if (match === null) throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
    const digits = match[1]!.replace(/^0+(?=.)/, '');
    if (digits.length > MAX_HEX_DIGITS) throw new IcapProtocolError('ICAP_ERR_BODY_TOO_LARGE', `chunk size ${match[1]} is too large`);
    const size = parseInt(digits, 16);
    // §4.5: `ieof` on the zero chunk says the preview was the whole body; other extensions are ignored.
    const ieof = match[2] !== undefined && match[2].split(';').some((ext) => ext.trim().toLowerCase() === 'ieof');

    if (this.#bodyBytes + size > this.#limits.bodyBytes) {
      throw new IcapProtocolError('ICAP_ERR_BODY_TOO_LARGE', `body exceeds ${this.#limits.bodyBytes} bytes`);
    }
    if (this.#inPreview && this.#previewBytes + size > this.#head!.preview!) {
      // §4.5: the client MUST NOT send more than Preview bytes before 100 Continue.
      throw new IcapProtocolError('ICAP_ERR_BAD_PREVIEW', `preview data exceeds Preview: ${this.#head!.preview}`);
    }
    if (size === 0) {
      this.#ieof = ieof;
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
    if (this.#inPreview) this.#previewBytes += n;
    if (this.#chunkRemaining === 0) this.#state = 'chunk-end';
    this.#emit({ type: 'body', data });
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
    if (end === -1) {
      if (this.#pending.length > this.#limits.httpHeaderBytes - this.#trailerBytes) {
        throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `trailers exceed ${this.#limits.httpHeaderBytes} bytes`);
      }
      return false;
    }
    if (end > 0) {
      this.#trailerBytes += end + 2;
      if (this.#trailerBytes > this.#limits.httpHeaderBytes) {
        throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `trailers exceed ${this.#limits.httpHeaderBytes} bytes`);
      }
      if (this.#trailers.length >= this.#limits.headerCount) {
        throw new IcapProtocolError('ICAP_ERR_TOO_MANY_HEADERS', `more than ${this.#limits.headerCount} trailers`);
      }
      this.#trailers.push(Buffer.from(this.#pending.subarray(0, end + 2)));
      this.#consume(end + 2);
      return true;
    }
    this.#consume(2);
    const trailers = this.#trailers.length === 0 ? null : Buffer.concat(this.#trailers);
    this.#trailers = [];
    if (this.#inPreview && !this.#ieof) {
      // State first: the handler may call continueBody() or skipBody() from inside the event.
      this.#state = 'await-continue';
      this.#emit({ type: 'preview-end', ieof: false });
      return true;
    }
    const wasPreview = this.#inPreview;
    this.#finishMessage();
    if (wasPreview) this.#emit({ type: 'preview-end', ieof: true });
    this.#emit({ type: 'body-end', trailers });
    this.#emit({ type: 'message-end' });
    return true;
  }

  /** Back to reading a request head; called before message-end is emitted, so a handler may pause. */
  #finishMessage(): void {
    this.#state = 'request-head';
    this.#head = null;
    this.#inPreview = false;
    this.#scanFrom = 0;
  }
}
