/**
 * Taking header blocks off the input, shared by the request and the response decoder:
 * the ICAP head (ends at the first CRLF CRLF, bounded while it arrives) and each encapsulated
 * HTTP head (its exact length is given by the Encapsulated offsets, RFC 3507 §4.4.1).
 */
import { IcapProtocolError } from './errors.js';
import type { HeaderSectionName } from './encapsulated.js';
import { checkHeaderBlock, parseHeaderBlock } from './header-block.js';
import type { InputBuffer } from './input-buffer.js';
import type { HeaderList } from './header-list.js';
import type { HttpHead } from './types.js';

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * How much of the input the request head is first searched for as text. An ICAP head and the HTTP
 * heads behind it nearly always fit: one decode serves them all (HttpHeadsReader extends it by
 * exactly the bytes of heads that go past it). Longer ICAP heads are searched on as bytes. Not more:
 * what follows the heads is body, and every byte of the window is decoded; at 4 KiB a RESPMOD with a
 * 4 KiB body decoded 4 KiB of it into a string it never read (≈ 4.2 KB of ≈ 25 KB allocated per request).
 */
const TEXT_WINDOW_BYTES = 1024;

/** Reads one ICAP head (request line or status line, headers, empty line). */
export class IcapHeadReader {
  readonly #maxBytes: number;
  /** For the error message: 'ICAP header block' or 'ICAP response head'. */
  readonly #what: string;
  /**
   * Where to resume the search for CRLF CRLF, so a slow peer costs O(n), not O(n²), past the text
   * window. Within it, each arrival re-flattens the window's text: at worst (one byte per read) a few
   * MB of copying for a head as long as the window, bounded by TEXT_WINDOW_BYTES.
   */
  #scanFrom = 0;

  constructor(maxBytes: number, what: string) {
    this.#maxBytes = maxBytes;
    this.#what = what;
  }

  /** The head's bytes with the final empty line, consumed from `input`; null when more input is needed. */
  read(input: InputBuffer): Buffer | null {
    const length = this.#headLength(input.bytes);
    if (length === -1) return null;
    // Copied: the head outlives this input buffer, and must not pin a large socket read.
    const raw = Buffer.from(input.bytes.subarray(0, length));
    input.consume(length);
    return raw;
  }

  /**
   * The head as latin1 text without the final empty line, consumed from `input`; null when more
   * input is needed. For the request decoder, which parses the text and keeps no bytes: no copy.
   * The search runs on the input's text of its first TEXT_WINDOW_BYTES (decoded once, and reused for
   * the HTTP heads behind), then on the bytes past it.
   */
  readText(input: InputBuffer): string | null {
    const pending = input.bytes;
    const window = Math.min(pending.length, TEXT_WINDOW_BYTES);
    if (window === 0) return null;
    const end = input.latin1(window).indexOf('\r\n\r\n', Math.max(0, this.#scanFrom - 3));
    let length: number;
    if (end !== -1) {
      length = end + 4;
      if (length > this.#maxBytes) this.#tooLarge();
      this.#scanFrom = 0;
    } else {
      this.#scanFrom = Math.max(this.#scanFrom, window);
      length = this.#headLength(pending);
      if (length === -1) return null;
    }
    const text = input.latin1(length - 4);
    input.consume(length);
    return text;
  }

  /** Length of the head at the start of `pending` (its empty line included), or -1 while it is incomplete. */
  #headLength(pending: Buffer): number {
    if (pending.length === 0) return -1;
    const end = pending.indexOf(CRLFCRLF, Math.max(0, this.#scanFrom - 3));
    if (end === -1) {
      if (pending.length > this.#maxBytes) this.#tooLarge();
      this.#scanFrom = pending.length;
      return -1;
    }
    const length = end + 4;
    if (length > this.#maxBytes) this.#tooLarge();
    this.#scanFrom = 0;
    return length;
  }

  #tooLarge(): never {
    throw new IcapProtocolError('ICAP_ERR_HEADER_TOO_LARGE', `${this.#what} exceeds ${this.#maxBytes} bytes`);
  }
}

/** Reads a message's encapsulated HTTP header blocks, in the order and lengths Encapsulated gives. */
export class HttpHeadsReader {
  readonly #maxHeaderCount: number;
  #sections: readonly { readonly name: HeaderSectionName; readonly length: number }[] = [];
  #next = 0;

  constructor(maxHeaderCount: number) {
    this.#maxHeaderCount = maxHeaderCount;
  }

  /** A new message with these header blocks (from its Encapsulated header). */
  begin(sections: readonly { readonly name: HeaderSectionName; readonly length: number }[]): void {
    this.#sections = sections;
    this.#next = 0;
  }

  /** The next block, 'done' once every block was read, or null when more input is needed. */
  read(input: InputBuffer): HttpHead | 'done' | null {
    const section = this.#sections[this.#next];
    if (section === undefined) return 'done';
    const head = readHttpHead(input, section.name, section.length, this.#maxHeaderCount);
    if (head !== null) this.#next++;
    return head;
  }
}

/**
 * One encapsulated HTTP head, kept as its latin1 text: its bytes (`raw`, for echoing or rewriting
 * it) are rebuilt on first use, exactly (latin1 maps every byte to one character and back). So a
 * head never pins the socket read it came in, and most transactions (204s) never build them.
 * Its headers too are parsed on first use: the block was checked when it arrived (a malformed line
 * is a 400 then, as always), and a REQMOD without a body and without rules never reads them.
 */
class ParsedHttpHead implements HttpHead {
  readonly section: HeaderSectionName;
  readonly startLine: string;
  /** The block with its final CRLF CRLF. */
  readonly #text: string;
  #headers: HeaderList | null = null;
  #raw: Buffer | null = null;

  constructor(section: HeaderSectionName, text: string, startLine: string) {
    this.section = section;
    this.#text = text;
    this.startLine = startLine;
  }

  get headers(): HeaderList {
    // Checked already (checkHeaderBlock), so it parses; no count limit left to apply.
    return (this.#headers ??= parseHeaderBlock(this.#text.slice(0, -4), Number.POSITIVE_INFINITY, this.section).headers);
  }

  get raw(): Buffer {
    return (this.#raw ??= Buffer.from(this.#text, 'latin1'));
  }
}

/**
 * Reads one encapsulated HTTP header block of exactly `length` bytes; null when more input is
 * needed. `length` was already bounded by the HTTP header limit when Encapsulated was parsed.
 */
function readHttpHead(input: InputBuffer, name: HeaderSectionName, length: number, maxHeaderCount: number): HttpHead | null {
  if (input.length < length) return null;
  // §4.4.1: the offsets give each block's exact length; it must end with its empty line there.
  // Searched within the block only: what follows may be a large body.
  const text = input.latin1(length);
  if (text.indexOf('\r\n\r\n') !== length - 4) {
    throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `${name} block does not end at the offset Encapsulated gives (${length} bytes)`);
  }
  input.consume(length);
  const startLine = checkHeaderBlock(text, length - 4, maxHeaderCount, name);
  if (startLine === '') throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${name} block has no start line`);
  return new ParsedHttpHead(name, text, startLine);
}
