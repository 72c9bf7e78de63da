/**
 * Keeps a label with open-ended values (a backend endpoint's address) from growing a metric
 * without bound. With endpoints from DNS (src/backends/pool/dns-endpoints.ts) every re-resolution
 * can bring new addresses (a cloud load balancer rotates its IPs), and each address seen would
 * otherwise keep its own histogram series, in memory and in every scrape, for the life of the
 * process. The first `max` values per group (per backend) keep their own series; later ones share
 * OVERFLOW_LABEL, so their scans are still counted, only not apart.
 */
export const OVERFLOW_LABEL = 'other';

export class BoundedLabels {
  readonly #max: number;
  readonly #admitted = new Map<string, Set<string>>();

  constructor(max: number) {
    this.#max = max;
  }

  /** `value` itself while its group has room or it was admitted before, else OVERFLOW_LABEL. */
  label(group: string, value: string): string {
    let admitted = this.#admitted.get(group);
    if (admitted === undefined) this.#admitted.set(group, (admitted = new Set()));
    if (admitted.has(value)) return value;
    if (admitted.size >= this.#max) return OVERFLOW_LABEL;
    admitted.add(value);
    return value;
  }
}
