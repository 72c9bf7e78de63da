/**
 * Minimal incremental ICAP message framing for the benchmark tools (load generator and trivial
 * responder). It only finds where each message ends; it interprets nothing it does not need.
 *
 *   ICAP head ──CRLFCRLF──▶ skip N encapsulated-header bytes (N = offset of the body or
 *   null-body tag in `Encapsulated:`, RFC 3507 §4.4.1) ──▶ if a `*-body` tag other than
 *   null-body is present: chunked body (§4.4, HTTP/1.1 §3.6.1)
 *      chunk-size [; ext] CRLF ─▶ data ─▶ CRLF ─▶ … ─▶ 0 [; ieof] CRLF ─▶ trailer* ─▶ CRLF
 *
 * Chunk sizes are parsed byte by byte and data is skipped by count, so a `0\r\n\r\n` inside the
 * data is never mistaken for the end. Feed it arbitrary slices; state survives between calls.
 */

export interface IcapHead {
  /** Response status code; 0 for requests. */
  status: number;
  /** Request method; '' for responses. */
  method: string;
  /** Encapsulated header bytes after the ICAP head (offset of the body / null-body tag). */
  encapsulatedHeaderBytes: number;
  /** A chunked body follows the encapsulated headers. */
  hasBody: boolean;
  /** `Preview:` value, or -1 when absent. */
  preview: number;
  /** `Connection: close` was present. */
  close: boolean;
}

export interface ScannerHandlers {
  onHead?(head: IcapHead): void;
  /**
   * The last-chunk and trailer of a chunk sequence were read; `ieof` tells whether the last-chunk
   * carried the `ieof` extension (§4.5). Return true to read another chunk sequence (the part
   * after a preview, once 100 Continue was sent); otherwise the message ends here.
   */
  onBodyEnd?(ieof: boolean): boolean;
  onMessage(head: IcapHead): void;
}

export class FramingError extends Error {
  readonly code = 'BENCH_ERR_FRAMING';
}

type State =
  | 'head'
  | 'encap-headers'
  | 'chunk-size'
  | 'chunk-ext'
  | 'chunk-size-lf'
  | 'chunk-data'
  | 'chunk-data-cr'
  | 'chunk-data-lf'
  | 'trailer'
  | 'trailer-lf';

const CR = 0x0d;
const LF = 0x0a;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const MAX_CHUNK_SIZE_DIGITS = 12;
const MAX_CHUNK_EXT = 256;
const MAX_TRAILER_LINE = 8192;
const MAX_ENCAPSULATED_OFFSET = 1 << 30;

export class IcapMessageScanner {
  readonly #kind: 'request' | 'response';
  readonly #handlers: ScannerHandlers;
  readonly #maxHeadBytes: number;
  #state: State = 'head';
  /** Unconsumed tail of a head split across reads (copied; heads are small). */
  #pending: Buffer | null = null;
  #remaining = 0;
  #chunkSize = 0;
  #sizeDigits = 0;
  #ext = '';
  #lineLen = 0;
  #head: IcapHead | null = null;

  constructor(kind: 'request' | 'response', handlers: ScannerHandlers, maxHeadBytes = 65536) {
    this.#kind = kind;
    this.#handlers = handlers;
    this.#maxHeadBytes = maxHeadBytes;
  }

  /** True between messages (nothing buffered, waiting for the next head). */
  get idle(): boolean {
    return this.#state === 'head' && this.#pending === null;
  }

  reset(): void {
    this.#state = 'head';
    this.#pending = null;
    this.#head = null;
  }

  /**
   * Consumes input[start, end). The bytes need not outlive the call (a head split across reads
   * is copied), so a caller may reuse one read buffer.
   */
  feed(input: Buffer, start = 0, end = input.length): void {
    let data = input;
    let pos = start;
    let limit = end;
    while (pos < limit) {
      switch (this.#state) {
        case 'head': {
          if (this.#pending !== null) {
            data = Buffer.concat([this.#pending, data.subarray(pos, limit)]);
            pos = 0;
            limit = data.length;
            this.#pending = null;
          }
          let headEnd = data.indexOf(CRLFCRLF, pos);
          if (headEnd + 4 > limit) headEnd = -1;
          if (headEnd < 0) {
            if (limit - pos > this.#maxHeadBytes) {
              throw new FramingError(`ICAP head exceeds ${this.#maxHeadBytes} bytes`);
            }
            this.#pending = Buffer.from(data.subarray(pos, limit));
            return;
          }
          if (headEnd + 4 - pos > this.#maxHeadBytes) {
            throw new FramingError(`ICAP head exceeds ${this.#maxHeadBytes} bytes`);
          }
          const head = parseHead(this.#kind, data, pos, headEnd + 2);
          pos = headEnd + 4;
          this.#head = head;
          this.#handlers.onHead?.(head);
          if (head.encapsulatedHeaderBytes > 0) {
            this.#remaining = head.encapsulatedHeaderBytes;
            this.#state = 'encap-headers';
          } else if (head.hasBody) {
            this.#startChunk();
          } else {
            this.#finish();
          }
          break;
        }
        case 'encap-headers': {
          const n = Math.min(this.#remaining, limit - pos);
          pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            if (this.#head?.hasBody === true) this.#startChunk();
            else this.#finish();
          }
          break;
        }
        case 'chunk-size': {
          const c = data[pos++]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.#sizeDigits > MAX_CHUNK_SIZE_DIGITS) throw new FramingError('chunk size too long');
            this.#chunkSize = this.#chunkSize * 16 + v;
          } else if (this.#sizeDigits === 0) {
            throw new FramingError(`bad chunk-size byte 0x${c.toString(16)}`);
          } else if (c === CR) {
            this.#state = 'chunk-size-lf';
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.#state = 'chunk-ext';
          } else {
            throw new FramingError(`bad chunk-size byte 0x${c.toString(16)}`);
          }
          break;
        }
        case 'chunk-ext': {
          const c = data[pos++]!;
          if (c === CR) {
            this.#state = 'chunk-size-lf';
          } else {
            if (this.#ext.length >= MAX_CHUNK_EXT) throw new FramingError('chunk extension too long');
            this.#ext += String.fromCharCode(c);
          }
          break;
        }
        case 'chunk-size-lf': {
          if (data[pos++] !== LF) throw new FramingError('chunk-size line not ended by CRLF');
          if (this.#chunkSize === 0) {
            this.#lineLen = 0;
            this.#state = 'trailer';
          } else {
            this.#remaining = this.#chunkSize;
            this.#state = 'chunk-data';
          }
          break;
        }
        case 'chunk-data': {
          const n = Math.min(this.#remaining, limit - pos);
          pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = 'chunk-data-cr';
          break;
        }
        case 'chunk-data-cr': {
          if (data[pos++] !== CR) throw new FramingError('chunk data not followed by CRLF');
          this.#state = 'chunk-data-lf';
          break;
        }
        case 'chunk-data-lf': {
          if (data[pos++] !== LF) throw new FramingError('chunk data not followed by CRLF');
          this.#startChunk();
          break;
        }
        case 'trailer': {
          const c = data[pos++]!;
          if (c === CR) this.#state = 'trailer-lf';
          else if (++this.#lineLen > MAX_TRAILER_LINE) throw new FramingError('trailer line too long');
          break;
        }
        case 'trailer-lf': {
          if (data[pos++] !== LF) throw new FramingError('trailer line not ended by CRLF');
          if (this.#lineLen > 0) {
            this.#lineLen = 0;
            this.#state = 'trailer';
            break;
          }
          const ieof = /(^|[;\s])ieof(\s|;|=|$)/i.test(this.#ext);
          if (this.#handlers.onBodyEnd?.(ieof) === true) this.#startChunk();
          else this.#finish();
          break;
        }
        default: {
          const never: never = this.#state;
          throw new FramingError(`unknown state ${String(never)}`);
        }
      }
    }
  }

  #startChunk(): void {
    this.#chunkSize = 0;
    this.#sizeDigits = 0;
    this.#ext = '';
    this.#state = 'chunk-size';
  }

  #finish(): void {
    const head = this.#head!;
    this.#head = null;
    this.#state = 'head';
    this.#handlers.onMessage(head);
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** Case-insensitive match of an ASCII lower-case `name` (e.g. "encapsulated:") at b[p]. */
function startsWithCI(b: Buffer, p: number, end: number, name: string): boolean {
  if (end - p < name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if ((b[p + i]! | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** Index of the CR of the next CRLF at or after p (or `end`); numeric search is the fast path. */
function lineEndAt(b: Buffer, p: number, end: number): number {
  let lf = b.indexOf(LF, p);
  while (lf >= 0 && lf < end + 2 && b[lf - 1] !== CR) lf = b.indexOf(LF, lf + 1);
  return lf < 0 || lf - 1 > end ? end : lf - 1;
}

/** Parses the ICAP head in b[start, end) (end points at the CRLF that ends the last header). */
export function parseHead(kind: 'request' | 'response', b: Buffer, start: number, end: number): IcapHead {
  const lineEnd = lineEndAt(b, start, end);
  const head: IcapHead = {
    status: 0,
    method: '',
    encapsulatedHeaderBytes: 0,
    hasBody: false,
    preview: -1,
    close: false,
  };
  if (kind === 'response') {
    // "ICAP/1.0 204 No Content"
    if (!startsWithCI(b, start, lineEnd, 'icap/') || lineEnd - start < 12) {
      throw new FramingError(`bad status line: ${JSON.stringify(b.toString('latin1', start, lineEnd))}`);
    }
    const sp = b.indexOf(0x20, start);
    const status = Number(b.toString('latin1', sp + 1, sp + 4));
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new FramingError(`bad status line: ${JSON.stringify(b.toString('latin1', start, lineEnd))}`);
    }
    head.status = status;
  } else {
    const sp = b.indexOf(0x20, start);
    if (sp < 0 || sp > lineEnd) throw new FramingError('bad request line');
    head.method = b.toString('latin1', start, sp);
  }
  let p = lineEnd + 2;
  let sawEncapsulated = false;
  while (p < end) {
    const e = lineEndAt(b, p, end);
    const first = b[p]! | 0x20;
    if (first === 0x65 && startsWithCI(b, p, e, 'encapsulated:')) {
      sawEncapsulated = true;
      parseEncapsulated(b.toString('latin1', p + 13, e), head);
    } else if (first === 0x70 && startsWithCI(b, p, e, 'preview:')) {
      const v = Number(b.toString('latin1', p + 8, e).trim());
      if (!Number.isInteger(v) || v < 0) throw new FramingError('bad Preview header');
      head.preview = v;
    } else if (first === 0x63 && startsWithCI(b, p, e, 'connection:')) {
      if (/\bclose\b/i.test(b.toString('latin1', p + 11, e))) head.close = true;
    }
    p = e + 2;
  }
  // No Encapsulated (e.g. "100 Continue", or some servers' 204): no encapsulated section.
  if (!sawEncapsulated) head.encapsulatedHeaderBytes = 0;
  return head;
}

function parseEncapsulated(value: string, head: IcapHead): void {
  let bodyTag = false;
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new FramingError(`bad Encapsulated entry: ${JSON.stringify(part)}`);
    const name = part.slice(0, eq).trim().toLowerCase();
    const offset = Number(part.slice(eq + 1).trim());
    if (!Number.isInteger(offset) || offset < 0 || offset > MAX_ENCAPSULATED_OFFSET) {
      throw new FramingError(`bad Encapsulated offset: ${JSON.stringify(part)}`);
    }
    if (name.endsWith('-body')) {
      bodyTag = true;
      head.encapsulatedHeaderBytes = offset;
      head.hasBody = name !== 'null-body';
    }
  }
  if (!bodyTag) throw new FramingError(`Encapsulated without a body tag: ${JSON.stringify(value)}`);
}
