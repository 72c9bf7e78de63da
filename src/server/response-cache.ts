/**
 * Answers whose bytes depend only on a few strings and on the second (the Date header): a 204
 * for a service and decision, an OPTIONS answer for a service. Encoded once per second and key,
 * then the same Buffer goes to every client that gets that answer (sockets only read it).
 * Encoding a 204 afresh each time was ~6 % of a null-body REQMOD's CPU (BENCHMARKS.md, Session 6).
 */

/** Distinct answers kept per second, at most: keys come from config and decisions, a bound guards the rest. */
const MAX_ENTRIES = 1024;

export class PerSecondResponseCache {
  #second = -1;
  #size = 0;
  /**
   * Two levels, so a lookup hashes strings that already exist (an ISTag, a header value) instead of
   * a key concatenated per request (measured: the concatenated key cost 3 % of a REQMOD's CPU).
   */
  readonly #groups = new Map<string, Map<string, Buffer>>();

  /** The answer for (`group`, `key`) in this second, built by `encode` (which reads the Date itself) on a miss. */
  get(group: string, key: string, encode: () => Buffer): Buffer {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#groups.clear();
      this.#size = 0;
    }
    let entries = this.#groups.get(group);
    let bytes = entries?.get(key);
    if (bytes === undefined) {
      bytes = encode();
      if (this.#size < MAX_ENTRIES) {
        if (entries === undefined) this.#groups.set(group, (entries = new Map()));
        entries.set(key, bytes);
        this.#size++;
      }
    }
    return bytes;
  }
}
