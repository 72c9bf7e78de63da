/**
 * Taking header blocks off the input, shared by the request and the response decoder:
 * the ICAP head (ends at the first CRLF CRLF, bounded while it arrives) and each encapsulated
 * HTTP head (its exact length is given by the Encapsulated offsets, RFC 3507 §4.4.1).
 */
import { IcapProtocolError } from './errors.js';
import type { HeaderSectionName } from './encapsulated.js';
import { parseHeaderBlock } from './header-block.js';
import type { InputBuffer } from './input-buffer.js';
import type { HttpHead } from './types.js';

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Reads one ICAP head (request line or status line, headers, empty line). */
export class IcapHeadReader {
  readonly #maxBytes: number;
  /** For the error message: 'ICAP header block' or 'ICAP response head'. */
  readonly #what: string;
  /** Where to resume the search for CRLF CRLF, so a slow peer costs O(n), not O(n²). */
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
   */
  readText(input: InputBuffer): string | null {
    const length = this.#headLength(input.bytes);
    if (length === -1) return null;
    const text = input.bytes.toString('latin1', 0, length - 4);
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

/**
 * A view may keep this many bytes of a socket read alive beyond the head itself. Every socket read
 * is its own allocation of the bytes read: a small request (the whole message in one read, as
 * REQMOD null-body comes) is kept as it is, while a head at the front of a 64 KiB read is copied
 * out so it does not pin the read for the transaction's life.
 */
const VIEW_SLACK_BYTES = 4096;

/** The first `length` bytes of `pending`, as a view when that pins little memory, else copied. */
function keepOrCopy(pending: Buffer, length: number): Buffer {
  const view = pending.subarray(0, length);
  return pending.buffer.byteLength - length <= VIEW_SLACK_BYTES ? view : Buffer.from(view);
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
 * Reads one encapsulated HTTP header block of exactly `length` bytes; null when more input is
 * needed. `length` was already bounded by the HTTP header limit when Encapsulated was parsed.
 */
function readHttpHead(input: InputBuffer, name: HeaderSectionName, length: number, maxHeaderCount: number): HttpHead | null {
  const pending = input.bytes;
  if (pending.length < length) return null;
  // §4.4.1: the offsets give each block's exact length; it must end with its empty line there.
  // Searched within the block only: what follows may be a large body.
  const end = pending.subarray(0, length).indexOf(CRLFCRLF);
  if (end !== length - 4) {
    throw new IcapProtocolError('ICAP_ERR_BAD_ENCAPSULATED', `${name} block does not end at the offset Encapsulated gives (${length} bytes)`);
  }
  const raw = keepOrCopy(pending, length);
  input.consume(length);
  const block = parseHeaderBlock(raw.toString('latin1', 0, length - 4), maxHeaderCount, name);
  if (block.startLine === '') throw new IcapProtocolError('ICAP_ERR_MALFORMED', `${name} block has no start line`);
  return { section: name, raw, startLine: block.startLine, headers: block.headers };
}
