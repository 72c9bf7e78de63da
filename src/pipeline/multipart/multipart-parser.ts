/**
 * Incremental multipart parser (RFC 2046 §5.1.1, as RFC 7578 uses it for multipart/form-data):
 * fed arbitrary slices, returns events; never buffers a part's content, only a part's header
 * block (bounded) and a held partial delimiter (< 80 bytes).
 *
 *   preamble ──delimiter──► delimiter-line ──CRLF──► headers ──CRLF CRLF──► body ──delimiter──┐
 *                               │  ▲                                                         │
 *                               │  └──────────────────────── part-end ◄──────────────────────┘
 *                               └──"--"──► epilogue ── end() ──► done
 *
 * `delimiter-line` reads what follows `CRLF--boundary`: "--" closes the multipart, otherwise
 * optional transport padding (spaces, tabs) then CRLF. Anything else means the boundary occurred
 * inside content, which RFC 2046 forbids senders to do; we refuse it ('malformed') instead of
 * guessing, because a guess that differs from the origin server's parser would let a part go
 * unscanned. Preamble and epilogue are handed out too ('preamble', 'epilogue' events): receivers
 * discard them, but they are bytes of the body and a threat anywhere in it must block, so the
 * caller scans them (spool-parts.ts).
 *
 * Errors are thrown as MultipartError (codes in multipart-error.ts) carrying the events of the
 * same write() that came before the error; after one, the parser is unusable.
 */
import { DelimiterScanner } from './delimiter-scanner.js';
import { MultipartError } from './multipart-error.js';
import { parsePartHeaders, type PartHeaders } from './part-headers.js';

export type MultipartEvent =
  /** Bytes before the first delimiter (a view, like part-data); never the CRLF that ends it. */
  | { readonly type: 'preamble'; readonly data: Buffer }
  | { readonly type: 'part-start'; readonly headers: PartHeaders }
  /** A view of the input slice (or a small copy of held bytes); consume before the next write. */
  | { readonly type: 'part-data'; readonly data: Buffer }
  | { readonly type: 'part-end' }
  /** The close delimiter was seen; the rest is epilogue. */
  | { readonly type: 'end' }
  /** Bytes after the close delimiter (a view, like part-data), from the CRLF that usually ends it. */
  | { readonly type: 'epilogue'; readonly data: Buffer };

export interface MultipartParserLimits {
  /** Most parts in this multipart body. */
  readonly maxParts: number;
  /** Most bytes of one part's header block. */
  readonly maxHeaderBytes: number;
  /** Most header fields in one part. */
  readonly maxHeaders: number;
}

type State = 'preamble' | 'delimiter-line' | 'headers' | 'body' | 'epilogue' | 'failed';

/** Transport padding allowed after a delimiter before its CRLF. */
const MAX_PADDING_BYTES = 256;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

export class MultipartParser {
  readonly #limits: MultipartParserLimits;
  readonly #scanner: DelimiterScanner;
  #state: State = 'preamble';
  /** In delimiter-line: the bytes read after the delimiter so far ("-", padding, "\r"). */
  #line = '';
  #headerBytes: Buffer = Buffer.alloc(0);
  #parts = 0;

  constructor(boundary: string, limits: MultipartParserLimits) {
    this.#limits = limits;
    // The first delimiter may open the body with no CRLF before it (RFC 2046 §5.1.1
    // `multipart-body := [preamble CRLF] dash-boundary ...`).
    this.#scanner = new DelimiterScanner(boundary, true);
  }

  write(slice: Buffer): MultipartEvent[] {
    const events: MultipartEvent[] = [];
    try {
      let at = 0;
      while (at < slice.length) at = this.#step(slice, at, events);
    } catch (err) {
      this.#state = 'failed';
      if (err instanceof MultipartError) err.events = events;
      throw err;
    }
    return events;
  }

  /** The input is over. Throws 'truncated' unless the close delimiter was seen. */
  end(): MultipartEvent[] {
    if (this.#state === 'epilogue') return [];
    const where = this.#state === 'preamble' ? 'before the first boundary' : `in ${this.#state}`;
    this.#state = 'failed';
    throw new MultipartError('truncated', `body ended ${where}, without the close delimiter`);
  }

  /** Consumes from `at`; returns where to continue. */
  #step(slice: Buffer, at: number, events: MultipartEvent[]): number {
    switch (this.#state) {
      case 'preamble': {
        const { data, next } = this.#scanner.scan(slice, at);
        for (const piece of data) events.push({ type: 'preamble', data: piece });
        if (next === -1) return slice.length;
        this.#state = 'delimiter-line';
        return next;
      }
      case 'body': {
        const { data, next } = this.#scanner.scan(slice, at);
        for (const piece of data) events.push({ type: 'part-data', data: piece });
        if (next === -1) return slice.length;
        events.push({ type: 'part-end' });
        this.#state = 'delimiter-line';
        return next;
      }
      case 'delimiter-line':
        return this.#readDelimiterLine(slice, at, events);
      case 'headers':
        return this.#readHeaders(slice, at, events);
      case 'epilogue':
        if (slice.length > at) events.push({ type: 'epilogue', data: slice.subarray(at) });
        return slice.length;
      case 'failed':
        throw new MultipartError('malformed', 'parser used after an error');
    }
  }

  #readDelimiterLine(slice: Buffer, at: number, events: MultipartEvent[]): number {
    while (at < slice.length) {
      const ch = String.fromCharCode(slice[at]!);
      at++;
      const line = this.#line + ch;
      if (line === '-') {
        this.#line = line;
      } else if (line === '--') {
        this.#line = '';
        this.#state = 'epilogue';
        events.push({ type: 'end' });
        return at;
      } else if (/^[ \t]*\r?$/.test(line) && line.length <= MAX_PADDING_BYTES) {
        this.#line = line;
      } else if (/^[ \t]*\r\n$/.test(line)) {
        this.#line = '';
        this.#state = 'headers';
        this.#headerBytes = Buffer.alloc(0);
        return at;
      } else {
        throw new MultipartError('malformed', `boundary followed by ${JSON.stringify(line.slice(-8))}, not CRLF or "--"`);
      }
    }
    return at;
  }

  #readHeaders(slice: Buffer, at: number, events: MultipartEvent[]): number {
    const before = this.#headerBytes.length;
    // Take no more than the limit plus the terminator can use.
    const room = this.#limits.maxHeaderBytes + HEADER_END.length - before;
    const take = slice.subarray(at, at + room);
    const bytes = before === 0 ? Buffer.from(take) : Buffer.concat([this.#headerBytes, take]);
    let end: number;
    let blockLength: number;
    if (bytes.length >= 2 && bytes[0] === CRLF[0] && bytes[1] === CRLF[1]) {
      // No header fields at all: the empty line follows the delimiter line at once.
      end = 2;
      blockLength = 0;
    } else {
      const found = bytes.indexOf(HEADER_END, Math.max(0, before - 3));
      end = found === -1 ? -1 : found + HEADER_END.length;
      blockLength = found;
    }
    if (end === -1) {
      if (bytes.length >= this.#limits.maxHeaderBytes + HEADER_END.length) {
        throw new MultipartError('part-header-too-large', `part header block over ${this.#limits.maxHeaderBytes} bytes`);
      }
      this.#headerBytes = bytes;
      return at + take.length;
    }
    if (blockLength > this.#limits.maxHeaderBytes) {
      throw new MultipartError('part-header-too-large', `part header block over ${this.#limits.maxHeaderBytes} bytes`);
    }
    if (++this.#parts > this.#limits.maxParts) {
      throw new MultipartError('too-many-parts', `more than ${this.#limits.maxParts} parts`);
    }
    const headers = parsePartHeaders(bytes.subarray(0, blockLength), { maxHeaders: this.#limits.maxHeaders });
    this.#headerBytes = Buffer.alloc(0);
    events.push({ type: 'part-start', headers });
    this.#state = 'body';
    return at + (end - before);
  }
}
