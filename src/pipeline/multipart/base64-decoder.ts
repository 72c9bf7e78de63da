/**
 * Streaming base64 decoding (RFC 2045 §6.8) of a part sent with `Content-Transfer-Encoding:
 * base64`, fed slices cut anywhere (mid-line, mid-quantum); holds at most 3 characters' bits.
 *
 * Lenient, as the decoders receivers use are, because the point is to scan the bytes a receiver
 * stores, not to judge the encoding:
 * - Characters outside the alphabet (line breaks, spaces, and anything invalid) are skipped: RFC
 *   2045 §6.8 says "any characters outside of the base64 alphabet are to be ignored", and
 *   javax.mail, Apache Commons Codec, Node's Buffer and Python's b64decode all do so. Refusing or
 *   stopping at one would let a sender put a stray byte before the payload: a receiver that skips
 *   it stores the payload, which we would then never decode. `-` and `_` (base64url) are not in
 *   the §6.8 alphabet and are skipped like any other byte, as MIME decoders do.
 * - `=` ends the current quantum (its 2 or 3 characters give 1 or 2 bytes, §6.8 "special
 *   processing"), and decoding goes on with the next character as a new quantum. javax.mail
 *   does the same; Node and Python stop at the first `=` instead, which yields a prefix of what
 *   we decode, so whatever either stores is scanned.
 * - A quantum cut short by the end of the data gives the bytes its characters hold (2 → 1 byte,
 *   3 → 2 bytes), as Node, Python (unpadded) and lenient javax.mail do; a lone character holds
 *   no whole byte and gives none.
 * Decoded output is never larger than 3/4 of the input, so it is bounded by the part it comes from.
 */

/** The §6.8 alphabet: value of each byte, -1 for bytes to skip. */
const VALUES = new Int8Array(256).fill(-1);
for (const [i, ch] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) {
  VALUES[ch.charCodeAt(0)] = i;
}
const PAD = 0x3d; // '='

export class Base64Decoder {
  /** Bits of the quantum being read, 6 per character. */
  #bits = 0;
  /** Characters of the quantum read so far (0–3). */
  #count = 0;

  /** Decodes one slice; returns a fresh buffer (never reused), possibly empty. */
  write(chunk: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(Math.floor(((this.#count + chunk.length) * 3) / 4) + 2);
    let n = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      const value = VALUES[byte]!;
      if (value === -1) {
        if (byte === PAD) n = this.#endQuantum(out, n);
        continue;
      }
      this.#bits = (this.#bits << 6) | value;
      if (++this.#count === 4) {
        out[n++] = this.#bits >>> 16;
        out[n++] = (this.#bits >>> 8) & 0xff;
        out[n++] = this.#bits & 0xff;
        this.#bits = 0;
        this.#count = 0;
      }
    }
    return shrink(out, n);
  }

  /** The data is over: the bytes of a quantum cut short. */
  end(): Buffer {
    const out = Buffer.alloc(2);
    return out.subarray(0, this.#endQuantum(out, 0));
  }

  /** Writes the whole bytes of a partial quantum at `n` and starts a new one; returns the new `n`. */
  #endQuantum(out: Buffer, n: number): number {
    if (this.#count === 2) {
      out[n++] = (this.#bits >>> 4) & 0xff;
    } else if (this.#count === 3) {
      out[n++] = (this.#bits >>> 10) & 0xff;
      out[n++] = (this.#bits >>> 2) & 0xff;
    }
    this.#bits = 0;
    this.#count = 0;
    return n;
  }
}

/**
 * `out` cut to its first `n` bytes. When most of it went unused (a slice of mostly skipped bytes)
 * the bytes are copied, so a spool holding the result holds no more memory than it counts.
 */
export function shrink(out: Buffer, n: number): Buffer {
  if (n === 0) return Buffer.alloc(0);
  return n * 2 < out.length ? Buffer.from(out.subarray(0, n)) : out.subarray(0, n);
}
