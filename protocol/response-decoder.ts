/**
 * Incremental ICAP response decoder, for the client side (an upstream ICAP server as a scanner).
 * Fed arbitrary slices of a connection's bytes, it emits events and keeps only the unconsumed
 * remainder (STYLE.md "Parsing bytes"). One response, RFC 3507 §4.3.3, §4.4:
 *
 *   response-head ──► http-head × N ──► (no body: null-body, or no Encapsulated) ──► message-end
 *                                   └─► body (chunks, then trailers: chunked-body.ts)
 *                                           │ last chunk
 *                                           ▼
 *                                       body-end ──► message-end
 *
 * A 100 Continue (§4.5) is a complete message of its own: response-head, then message-end; the
 * final response follows on the same connection. Limits are enforced while parsing, before bytes
 * are buffered past them. Errors are thrown as IcapProtocolError from push(); the decoder is
 * then dead (the connection must be closed).
 */
import { ChunkedBodyReader } from './chunked-body.js';
import { HttpHeadsReader, IcapHeadReader } from './head-reader.js';
import { InputBuffer } from './input-buffer.js';
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

type State = 'response-head' | 'http-head' | 'body' | 'failed';

export class IcapResponseDecoder {
  readonly #limits: ResponseDecoderLimits;
  readonly #onEvent: ResponseDecoderEventHandler;
  readonly #input = new InputBuffer();
  readonly #headReader: IcapHeadReader;
  readonly #httpHeads: HttpHeadsReader;
  readonly #body: ChunkedBodyReader;
  #state: State = 'response-head';
  #parsing = false;

  // The response being decoded.
  #head: IcapResponseHead | null = null;

  constructor(onEvent: ResponseDecoderEventHandler, limits: ResponseDecoderLimits = DEFAULT_LIMITS) {
    this.#onEvent = onEvent;
    this.#limits = limits;
    this.#headReader = new IcapHeadReader(limits.icapHeaderBytes, 'ICAP response head');
    this.#httpHeads = new HttpHeadsReader(limits.headerCount);
    this.#body = new ChunkedBodyReader(limits, 'response body');
  }

  /** True between responses with nothing buffered: the connection holds no stray bytes. */
  get idle(): boolean {
    return this.#state === 'response-head' && this.#input.length === 0;
  }

  /** True once push() has thrown; nothing more is decoded. */
  get failed(): boolean {
    return this.#state === 'failed';
  }

  push(chunk: Buffer): void {
    if (this.#state === 'failed') return;
    this.#input.append(chunk);
    if (this.#parsing) return; // re-entered from an event handler; the outer loop carries on
    this.#parsing = true;
    try {
      while (this.#step()) {
        /* each step consumes input or changes state */
      }
    } catch (err) {
      this.#state = 'failed';
      this.#input.clear();
      throw err;
    } finally {
      this.#parsing = false;
    }
  }

  /** Returns false when it needs more input. */
  #step(): boolean {
    switch (this.#state) {
      case 'response-head':
        return this.#readResponseHead();
      case 'http-head':
        return this.#readHttpHead();
      case 'body':
        return this.#readBody();
      case 'failed':
        return false;
    }
  }

  #readResponseHead(): boolean {
    const raw = this.#headReader.read(this.#input);
    if (raw === null) return false;
    const head = parseResponseHead(raw, this.#limits);
    this.#head = head;
    this.#httpHeads.begin(head.encapsulated.headers);
    this.#state = 'http-head';
    this.#onEvent({ type: 'response-head', head });
    return true;
  }

  #readHttpHead(): boolean {
    const httpHead = this.#httpHeads.read(this.#input);
    if (httpHead === null) return false;
    if (httpHead !== 'done') {
      this.#onEvent({ type: 'http-head', head: httpHead });
      return true;
    }
    const head = this.#head!;
    const body = head.encapsulated.body;
    if (body === null) {
      this.#finishMessage();
      this.#onEvent({ type: 'headers-end', body: null });
      this.#onEvent({ type: 'message-end' });
      return true;
    }
    this.#body.begin(null);
    this.#state = 'body';
    this.#onEvent({ type: 'headers-end', body });
    return true;
  }

  #readBody(): boolean {
    const read = this.#body.read(this.#input);
    switch (read) {
      case 'need-more':
        return false;
      case 'framing':
        return true;
      case 'last-chunk': {
        const extension = this.#body.lastChunkExtension?.trim() ?? null;
        const trailers = this.#body.trailers;
        this.#finishMessage();
        this.#onEvent({ type: 'body-end', extension, trailers });
        this.#onEvent({ type: 'message-end' });
        return true;
      }
      default:
        this.#onEvent({ type: 'body', data: read });
        return true;
    }
  }

  /** Back to reading a response head; called before message-end is emitted. */
  #finishMessage(): void {
    this.#state = 'response-head';
    this.#head = null;
  }
}
