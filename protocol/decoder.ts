/**
 * Incremental ICAP request decoder: fed arbitrary slices of a connection's bytes, it emits
 * DecoderEvents and keeps only the unconsumed remainder (STYLE.md "Parsing bytes").
 *
 * One message, RFC 3507 §4.4 and §4.5:
 *
 *   request-head ──► http-head × N ──► (null-body) ──────────────────────────► message-end
 *                                  └─► body (chunks, then trailers: chunked-body.ts)
 *                                          │ last chunk
 *                                          ├─ not in preview: body-end ► message-end
 *                                          ├─ in preview, ieof: preview-end, body-end, message-end
 *                                          └─ in preview, no ieof: preview-end ► await-continue
 *   await-continue ── continueBody() ──► body (the rest, after the preview)
 *                  └─ skipBody() ──────► message-end (the server answered after the preview)
 *
 * Limits are enforced while parsing, before bytes are buffered past them. Errors are thrown as
 * IcapProtocolError from push() (or continueBody/skipBody/resume); the decoder is then dead.
 */
import { ChunkedBodyReader } from './chunked-body.js';
import { HttpHeadsReader, IcapHeadReader } from './head-reader.js';
import { InputBuffer } from './input-buffer.js';
import { parseRequestHead } from './request-head.js';
import { DEFAULT_LIMITS, type DecoderEvent, type DecoderLimits, type IcapRequestHead } from './types.js';

type State = 'request-head' | 'http-head' | 'body' | 'await-continue' | 'failed';

export type DecoderEventHandler = (event: DecoderEvent) => void;

export class IcapDecoder {
  readonly #limits: DecoderLimits;
  readonly #onEvent: DecoderEventHandler;
  readonly #input = new InputBuffer();
  readonly #headReader: IcapHeadReader;
  readonly #httpHeads: HttpHeadsReader;
  readonly #body: ChunkedBodyReader;
  #state: State = 'request-head';
  #paused = false;
  #parsing = false;

  // The message being decoded.
  #head: IcapRequestHead | null = null;
  #inPreview = false;

  constructor(onEvent: DecoderEventHandler, limits: DecoderLimits = DEFAULT_LIMITS) {
    this.#onEvent = onEvent;
    this.#limits = limits;
    this.#headReader = new IcapHeadReader(limits.icapHeaderBytes, 'ICAP header block');
    this.#httpHeads = new HttpHeadsReader(limits.headerCount);
    this.#body = new ChunkedBodyReader(limits, 'body');
  }

  /** True while the decoder waits for the server to decide after a preview (§4.5). */
  get awaitingContinue(): boolean {
    return this.#state === 'await-continue';
  }

  /**
   * Bytes pushed and not consumed yet. At message-end the message's own bytes are all consumed, so
   * this is what came behind it on the wire (the start of a pipelined request).
   */
  get buffered(): number {
    return this.#input.length;
  }

  /** True between messages with nothing buffered: a close now loses no request. */
  get idle(): boolean {
    return this.#state === 'request-head' && this.#input.length === 0;
  }

  push(chunk: Buffer): void {
    if (this.#state === 'failed') return;
    this.#input.append(chunk);
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
    this.#body.continueAfterPreview();
    this.#state = 'body';
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
      this.#input.clear();
      throw err;
    } finally {
      this.#parsing = false;
    }
  }

  #emit(event: DecoderEvent): void {
    this.#onEvent(event);
  }

  /** Returns false when it needs more input (or must wait for the server). */
  #step(): boolean {
    switch (this.#state) {
      case 'request-head':
        return this.#readRequestHead();
      case 'http-head':
        return this.#readHttpHead();
      case 'body':
        return this.#readBody();
      case 'await-continue':
      case 'failed':
        return false;
    }
  }

  #readRequestHead(): boolean {
    // RFC 2616 §4.1 robustness, which ICAP inherits: ignore empty lines before a request line.
    const input = this.#input;
    while (input.length >= 2 && input.bytes[0] === 0x0d && input.bytes[1] === 0x0a) input.consume(2);
    const text = this.#headReader.readText(input);
    if (text === null) return false;
    const head = parseRequestHead(text, this.#limits);
    this.#head = head;
    this.#httpHeads.begin(head.encapsulated.headers);
    this.#state = 'http-head';
    this.#emit({ type: 'request-head', head });
    return true;
  }

  #readHttpHead(): boolean {
    const httpHead = this.#httpHeads.read(this.#input);
    if (httpHead === null) return false;
    if (httpHead !== 'done') {
      this.#emit({ type: 'http-head', head: httpHead });
      return true;
    }
    const head = this.#head!;
    const body = head.encapsulated.body;
    if (body === 'null-body') {
      this.#finishMessage();
      this.#emit({ type: 'headers-end', body: null });
      this.#emit({ type: 'message-end' });
      return true;
    }
    this.#inPreview = head.preview !== null;
    this.#body.begin(head.preview);
    this.#state = 'body';
    this.#emit({ type: 'headers-end', body });
    return true;
  }

  #readBody(): boolean {
    const read = this.#body.read(this.#input);
    switch (read) {
      case 'need-more':
        return false;
      case 'framing':
        return true;
      case 'last-chunk':
        this.#endBody();
        return true;
      default:
        this.#emit({ type: 'body', data: read });
        return true;
    }
  }

  /** The zero chunk and its trailers were read: the preview or the whole body ended. */
  #endBody(): void {
    // §4.5: `ieof` on the zero chunk says the preview was the whole body; other extensions are ignored.
    const extension = this.#body.lastChunkExtension;
    const ieof = extension !== null && extension.split(';').some((ext) => ext.trim().toLowerCase() === 'ieof');
    if (this.#inPreview && !ieof) {
      // State first: the handler may call continueBody() or skipBody() from inside the event.
      this.#state = 'await-continue';
      this.#emit({ type: 'preview-end', ieof: false });
      return;
    }
    const wasPreview = this.#inPreview;
    const trailers = this.#body.trailers;
    this.#finishMessage();
    if (wasPreview) this.#emit({ type: 'preview-end', ieof: true });
    this.#emit({ type: 'body-end', trailers });
    this.#emit({ type: 'message-end' });
  }

  /** Back to reading a request head; called before message-end is emitted, so a handler may pause. */
  #finishMessage(): void {
    this.#state = 'request-head';
    this.#head = null;
    this.#inPreview = false;
  }
}
