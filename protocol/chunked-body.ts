/**
 * Reads one chunked ICAP body off the input (RFC 3507 §4.4.2, which borrows RFC 2616 §3.6.1);
 * shared by the request and the response decoder.
 *
 *   size ──► data ──► data-end ──► size ...
 *     │ zero chunk
 *     ▼
 *   trailers (errata e2) ──► done: read() returned 'last-chunk'
 *
 * Each read() either consumes input and says what it read, or returns 'need-more' having
 * consumed nothing. Limits are checked while the bytes arrive: the chunk-size line, the body
 * size (before a chunk's data is read), the preview window (§4.5) and the trailers. Errors are
 * thrown as IcapProtocolError.
 */
import { IcapProtocolError } from './errors.js';
import type { InputBuffer } from './input-buffer.js';
import type { DecoderLimits } from './types.js';

type State = 'size' | 'data' | 'data-end' | 'trailers' | 'done';

/**
 * What one read() took: body bytes (a view into the input, valid until the caller returns unless
 * retained), chunk framing only, the end of the body (then see lastChunkExtension and trailers),
 * or nothing yet.
 */
export type ChunkedRead = Buffer | 'framing' | 'last-chunk' | 'need-more';

export type ChunkedBodyLimits = Pick<DecoderLimits, 'chunkLineBytes' | 'httpHeaderBytes' | 'headerCount' | 'bodyBytes'>;

const CRLF = Buffer.from('\r\n');
const CHUNK_LINE = /^([0-9A-Fa-f]+)[ \t]*(?:;(.*))?$/;
/** 13 hex digits = 2^52: every declared size stays an exact JavaScript number. */
const MAX_HEX_DIGITS = 13;

export class ChunkedBodyReader {
  readonly #limits: ChunkedBodyLimits;
  /** For the body-size error message: 'body' or 'response body'. */
  readonly #what: string;
  #state: State = 'done';
  #bodyBytes = 0;
  #chunkRemaining = 0;
  /** The Preview value while reading a preview (§4.5), else null. */
  #preview: number | null = null;
  #extension: string | null = null;
  #trailerLines: Buffer[] = [];
  #trailerBytes = 0;
  #trailers: Buffer | null = null;

  constructor(limits: ChunkedBodyLimits, what: string) {
    this.#limits = limits;
    this.#what = what;
  }

  /** After 'last-chunk': the last chunk's extensions as sent after its first `;` (untrimmed), or null. */
  get lastChunkExtension(): string | null {
    return this.#extension;
  }

  /** After 'last-chunk': the raw trailer lines, or null when there were none. */
  get trailers(): Buffer | null {
    return this.#trailers;
  }

  /** Starts a new body; with `preview` set, its chunks may carry at most that many bytes (§4.5). */
  begin(preview: number | null): void {
    this.#bodyBytes = 0;
    this.#preview = preview;
    this.#startChunks();
  }

  /** After a preview's zero chunk: the rest of the same body follows (still within the body limit). */
  continueAfterPreview(): void {
    this.#preview = null;
    this.#startChunks();
  }

  read(input: InputBuffer): ChunkedRead {
    switch (this.#state) {
      case 'size':
        return this.#readSize(input);
      case 'data':
        return this.#readData(input);
      case 'data-end':
        return this.#readDataEnd(input);
      case 'trailers':
        return this.#readTrailer(input);
      case 'done':
        return 'need-more';
    }
  }

  #startChunks(): void {
    this.#state = 'size';
    this.#extension = null;
    this.#trailers = null;
  }

  #readSize(input: InputBuffer): ChunkedRead {
    const pending = input.bytes;
    const end = pending.indexOf(CRLF);
    if (end === -1) {
      if (pending.length >= this.#limits.chunkLineBytes) this.#lineTooLong();
      return 'need-more';
    }
    if (end + 2 > this.#limits.chunkLineBytes) this.#lineTooLong();
    const line = pending.toString('latin1', 0, end);
    input.consume(end + 2);
    const match = CHUNK_LINE.exec(line);
    if (match === null) throw new IcapProtocolError('ICAP_ERR_MALFORMED', `malformed chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
    const digits = match[1]!.replace(/^0+(?=.)/, '');
    if (digits.length > MAX_HEX_DIGITS) throw new IcapProtocolError('ICAP_ERR_BODY_TOO_LARGE', `chunk size ${match[1]} is too large`);
    const size = parseInt(digits, 16);
    if (this.#bodyBytes + size > this.#limits.bodyBytes) {
      throw new IcapProtocolError('ICAP_ERR_BODY_TOO_LARGE', `${this.#what} exceeds ${this.#limits.bodyBytes} bytes`);
    }
    if (this.#preview !== null && this.#bodyBytes + size > this.#preview) {
      // §4.5: the client MUST NOT send more than Preview bytes before 100 Continue.
      throw new IcapProtocolError('ICAP_ERR_BAD_PREVIEW', `preview data exceeds Preview: ${this.#preview}`);
    }
    if (size === 0) {
      this.#extension = match[2] ?? null;
      this.#trailerLines = [];
      this.#trailerBytes = 0;
      this.#state = 'trailers';
      return 'framing';
    }
    this.#chunkRemaining = size;
    this.#state = 'data';
    return 'framing';
  }

  #readData(input: InputBuffer): ChunkedRead {
    const pending = input.bytes;
    if (pending.length === 0) return 'need-more';
    const n = Math.min(this.#chunkRemaining, pending.length);
    const data = pending.subarray(0, n);
    input.consume(n);
    this.#chunkRemaining -= n;
    this.#bodyBytes += n;
    if (this.#chunkRemaining === 0) this.#state = 'data-end';
    return data;
  }

  #readDataEnd(input: InputBuffer): ChunkedRead {
    const pending = input.bytes;
    if (pending.length < 2) return 'need-more';
    if (pending[0] !== 0x0d || pending[1] !== 0x0a) {
      throw new IcapProtocolError('ICAP_ERR_MALFORMED', 'chunk data not followed by CRLF');
    }
    input.consume(2);
    this.#state = 'size';
    return 'framing';
  }

  /** One trailer line (errata e2), or the empty line that ends the body. */
  #readTrailer(input: InputBuffer): ChunkedRead {
    const pending = input.bytes;
    const end = pending.indexOf(CRLF);
    if (end === -1) {
      if (pending.length > this.#limits.httpHeaderBytes - this.#trailerBytes) this.#trailersTooLarge();
      return 'need-more';
    }
    if (end > 0) {
      this.#trailerBytes += end + 2;
      if (this.#trailerBytes > this.#limits.httpHeaderBytes) this.#trailersTooLarge();
      if (this.#trailerLines.length >= this.#limits.headerCount) {
        throw new IcapProtocolError('ICAP_ERR_TOO_MANY_HEADERS', `more than ${this.#limits.headerCount} trailers`);
      }
      this.#trailerLines.push(Buffer.from(pending.subarray(0, end + 2)));
      input.consume(end + 2);
      return 'framing';
    }
    input.consume(2);
    this.#trailers = this.#trailerLines.length === 0 ? null : Buffer.concat(this.#trailerLines);
    this.#trailerLines = [];
    this.#state = 'done';
    return 'last-chunk';
  }

  #lineTooLong(): never {
    throw new IcapProtocolError('ICAP_ERR_CHUNK_LINE_TOO_LONG', `chunk-size line exceeds ${this.#limits.chunkLineBytes} bytes`);
  }

  #trailersTooLarge(): never {
    throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `trailers exceed ${this.#limits.httpHeaderBytes} bytes`);
  }
}
