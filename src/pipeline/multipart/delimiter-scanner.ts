/**
 * Finds `CRLF "--" boundary` (RFC 2046 §5.1.1 `delimiter`) in a stream fed in arbitrary slices,
 * handing the bytes before it onward as views of the input (STYLE.md "Cursor, not copies").
 *
 * A partial match at the end of a slice is held back (copied: at most the delimiter's length − 1
 * bytes) until the next slice says whether it is the delimiter or data. Because the boundary has
 * no CR (part-headers.ts checks), CR occurs only as the delimiter's first byte; so when a held
 * partial match fails, no other match can start inside it and it is all data.
 *
 * With `leadingCrlf` the scanner starts out holding a CRLF that is not in the input, so that a
 * first line `--boundary` matches; should that match fail, the made-up CRLF is dropped, never
 * handed on as data (the preamble is scanned, so its bytes must be the ones sent).
 */
export interface ScanStep {
  /** Bytes before the delimiter (or all of the slice from `from` when none was found). */
  readonly data: Buffer[];
  /** Index in the slice just past the delimiter, or -1 when the slice ended first. */
  readonly next: number;
}

const CR = 0x0d;

export class DelimiterScanner {
  readonly #delimiter: Buffer;
  /** A prefix of the delimiter seen at the end of the previous slice. */
  #held: Buffer;
  /** How many leading bytes of `#held` were made up (the `leadingCrlf`), not input. */
  #madeUp: number;

  /** `leadingCrlf`: behave as if the stream began with CRLF, so a first line `--boundary` matches. */
  constructor(boundary: string, leadingCrlf = false) {
    this.#delimiter = Buffer.from(`\r\n--${boundary}`, 'utf8');
    this.#held = leadingCrlf ? Buffer.from('\r\n') : Buffer.alloc(0);
    this.#madeUp = this.#held.length;
  }

  /** True when bytes are held back that are data unless the next slice completes the delimiter. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  scan(slice: Buffer, from: number): ScanStep {
    const delim = this.#delimiter;
    const data: Buffer[] = [];
    let at = from;
    if (this.#held.length > 0) {
      const matched = this.#held.length;
      const need = delim.length - matched;
      const avail = Math.min(need, slice.length - at);
      if (slice.compare(delim, matched, matched + avail, at, at + avail) === 0) {
        if (avail === need) {
          this.#held = Buffer.alloc(0);
          this.#madeUp = 0;
          return { data, next: at + need };
        }
        this.#held = Buffer.concat([this.#held, slice.subarray(at, at + avail)]);
        return { data, next: -1 };
      }
      const held = this.release();
      if (held.length > 0) data.push(held);
    }
    const found = slice.indexOf(delim, at);
    if (found !== -1) {
      if (found > at) data.push(slice.subarray(at, found));
      return { data, next: found + delim.length };
    }
    // Hold back the longest tail that is a prefix of the delimiter (it starts at a CR).
    const tailStart = Math.max(at, slice.length - (delim.length - 1));
    for (let cr = slice.indexOf(CR, tailStart); cr !== -1; cr = slice.indexOf(CR, cr + 1)) {
      if (slice.compare(delim, 0, slice.length - cr, cr, slice.length) === 0) {
        if (cr > at) data.push(slice.subarray(at, cr));
        this.#held = Buffer.from(slice.subarray(cr));
        return { data, next: -1 };
      }
    }
    if (slice.length > at) data.push(slice.subarray(at));
    return { data, next: -1 };
  }

  /** The held bytes as data (the stream ended, or the caller stops looking). */
  release(): Buffer {
    const held = this.#held.subarray(this.#madeUp);
    this.#held = Buffer.alloc(0);
    this.#madeUp = 0;
    return held;
  }
}
