/**
 * Streaming quoted-printable decoding (RFC 2045 §6.7) of a part sent with
 * `Content-Transfer-Encoding: quoted-printable`, fed slices cut anywhere (inside `=XX`, between
 * `=` and its line break); holds at most MAX_HELD_WHITESPACE + 2 bytes.
 *
 * Rules, each as §6.7 gives it, with the lenient reading real decoders (javax.mail's
 * QPDecoderStream, Python's quopri) apply where senders break it:
 * - `=XX` is the byte XX (rule 1). Lower-case hex digits are accepted, as §6.7 note (1) suggests.
 * - `=` then a line break is a soft line break and goes (rule 5). Whitespace between the `=` and
 *   the break is transport padding (rule 3), and a bare LF or a bare CR counts as a line break:
 *   senders that write LF line ends or old Mac ones exist, and their receivers unwrap the lines.
 * - `=` followed by anything else is kept as it is, with what follows (§6.7 note (2): "include
 *   the '=' character and the following character in the decoded data"); so is a lone `=` at
 *   the end. Refusing the part instead would leave no decoded form to scan at all.
 * - Whitespace at the end of a line (before CR or LF, or at the end of the data) is deleted
 *   (rule 3: "any trailing white space on a line must be deleted"). To stay bounded, a run of
 *   whitespace is held only up to MAX_HELD_WHITESPACE bytes (rule 5 caps lines at 76); a longer
 *   run is not a padded QP line and is kept.
 * - Every other byte, line breaks included (rule 4), is itself. Bytes §6.7 says must be encoded
 *   (controls, 8-bit) are kept as sent, as receivers keep them.
 * Decoded output is never larger than the input, so it is bounded by the part it comes from.
 */
import { shrink } from './base64-decoder.js';

const EQUALS = 0x3d;
const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
/** Most whitespace held to see whether a line break follows it (a QP line is at most 76 bytes). */
export const MAX_HELD_WHITESPACE = 1024;

/**
 * Where the decoder is: in text; after `=`; after `=` and one hex digit; after `=` and
 * whitespace; after `=` (and whitespace) and CR.
 */
type State = 'text' | 'equals' | 'hex' | 'equals-space' | 'equals-cr';

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

const isSpace = (byte: number): boolean => byte === SP || byte === HTAB;

export class QuotedPrintableDecoder {
  #state: State = 'text';
  /** The first hex digit (state 'hex'), as sent. */
  #hexByte = 0;
  /** Whitespace held: in 'text', maybe trailing; in 'equals-space', maybe padding before a soft break. */
  #space: number[] = [];

  /** Decodes one slice; returns a fresh buffer (never reused), possibly empty. */
  write(chunk: Uint8Array): Buffer {
    // Every byte out is a byte of this slice or one held: `=`, a hex digit, or whitespace.
    const out = Buffer.allocUnsafe(chunk.length + this.#space.length + 2);
    let n = 0;
    for (let i = 0; i < chunk.length; i++) n = this.#step(chunk[i]!, out, n);
    return shrink(out, n);
  }

  /** The data is over: a dangling `=` and hex digit are kept; trailing whitespace goes (rule 3). */
  end(): Buffer {
    const out = Buffer.alloc(2);
    let n = 0;
    if (this.#state === 'equals' || this.#state === 'equals-space') out[n++] = EQUALS;
    else if (this.#state === 'hex') {
      out[n++] = EQUALS;
      out[n++] = this.#hexByte;
    }
    this.#state = 'text';
    this.#space = [];
    return out.subarray(0, n);
  }

  #step(byte: number, out: Buffer, n: number): number {
    switch (this.#state) {
      case 'text':
        if (isSpace(byte)) {
          if (this.#space.length === MAX_HELD_WHITESPACE) n = this.#flushSpace(out, n);
          this.#space.push(byte);
          return n;
        }
        if (byte === CR || byte === LF) this.#space = []; // trailing whitespace (rule 3)
        else n = this.#flushSpace(out, n);
        if (byte === EQUALS) this.#state = 'equals';
        else out[n++] = byte;
        return n;
      case 'equals':
        if (hexValue(byte) !== -1) {
          this.#hexByte = byte;
          this.#state = 'hex';
          return n;
        }
        if (isSpace(byte)) {
          this.#state = 'equals-space';
          this.#space = [byte];
          return n;
        }
        if (byte === CR) {
          this.#state = 'equals-cr';
          return n;
        }
        if (byte === LF) {
          this.#state = 'text'; // soft line break with a bare LF
          return n;
        }
        out[n++] = EQUALS; // note (2): kept, and the byte after it read as text
        this.#state = 'text';
        return this.#step(byte, out, n);
      case 'hex': {
        const low = hexValue(byte);
        this.#state = 'text';
        if (low !== -1) {
          out[n++] = (hexValue(this.#hexByte) << 4) | low;
          return n;
        }
        out[n++] = EQUALS;
        out[n++] = this.#hexByte;
        return this.#step(byte, out, n);
      }
      case 'equals-space':
        if (isSpace(byte) && this.#space.length < MAX_HELD_WHITESPACE) {
          this.#space.push(byte);
          return n;
        }
        if (byte === CR || byte === LF) {
          this.#space = []; // padding after a soft break's `=` (rule 3)
          this.#state = byte === CR ? 'equals-cr' : 'text';
          return n;
        }
        out[n++] = EQUALS; // `=` then whitespace then text: all kept, note (2)
        n = this.#flushSpace(out, n);
        this.#state = 'text';
        return this.#step(byte, out, n);
      case 'equals-cr':
        this.#state = 'text';
        // A soft break: `=` CRLF, or `=` and a bare CR, after which `byte` is text.
        return byte === LF ? n : this.#step(byte, out, n);
    }
  }

  #flushSpace(out: Buffer, n: number): number {
    for (const byte of this.#space) out[n++] = byte;
    this.#space = [];
    return n;
  }
}
