/**
 * The EICAR anti-virus test file signature and a matcher that finds it anywhere in a body fed
 * in arbitrary chunks.
 *
 * The 68-byte string is stored as two halves joined at runtime, so that this source file (and
 * its compiled form) is not itself reported by a scanner on a developer machine or in CI.
 */

const FIRST_HALF = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$';
const SECOND_HALF = 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

/** The EICAR test string, 68 bytes. */
export const EICAR_SIGNATURE: Buffer = Buffer.from(FIRST_HALF + SECOND_HALF, 'latin1');

/** Threat name reported for the EICAR test file. */
export const EICAR_THREAT_NAME = 'EICAR-Test-File';

/**
 * Streaming search for EICAR_SIGNATURE. Each chunk is searched on its own; a match straddling
 * the previous chunk is found in a small window of the previous tail (signature length − 1
 * bytes) and the new chunk's head, so no chunk is ever copied whole.
 */
export class EicarMatcher {
  #found = false;
  /** Last SIGNATURE_LENGTH − 1 bytes seen (fewer near the start), copied: the chunk may be reused. */
  #tail: Buffer = Buffer.alloc(0);

  get found(): boolean {
    return this.#found;
  }

  push(chunk: Uint8Array): void {
    if (this.#found || chunk.length === 0) return;
    const keep = EICAR_SIGNATURE.length - 1;
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.#tail.length > 0) {
      const window = Buffer.concat([this.#tail, bytes.subarray(0, keep)]);
      if (window.indexOf(EICAR_SIGNATURE) !== -1) {
        this.#found = true;
        return;
      }
    }
    if (bytes.indexOf(EICAR_SIGNATURE) !== -1) {
      this.#found = true;
      return;
    }
    this.#tail =
      bytes.length >= keep
        ? Buffer.from(bytes.subarray(bytes.length - keep))
        : Buffer.concat([this.#tail, bytes]).subarray(-keep);
  }
}

/** One-shot search, for bodies already in memory. */
export function containsEicar(bytes: Uint8Array): boolean {
  const matcher = new EicarMatcher();
  matcher.push(bytes);
  return matcher.found;
}
