/** Small statistics helpers for the benchmark tools. */

/** Growable Float64Array of samples (amortised O(1) push, no per-sample allocation). */
export class SampleBuffer {
  #data = new Float64Array(1 << 16);
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(v: number): void {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#length++] = v;
  }

  clear(): void {
    this.#length = 0;
  }

  /** A copy of the samples, in the order they were pushed. */
  copy(): Float64Array {
    return this.#data.slice(0, this.#length);
  }

  /** A sorted copy of the samples. */
  sorted(): Float64Array {
    return this.copy().sort();
  }
}

/** Nearest-rank percentile (q in [0, 1]) of an ascending array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

export function round(v: number, digits = 2): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** The latency block of a load result: p50/p90/p99/max/mean in ms, 3 decimals; NaN for no samples. */
export function latencySummaryMs(sorted: ArrayLike<number>): { p50: number; p90: number; p99: number; max: number; mean: number } {
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    p50: round(percentile(sorted, 0.5), 3),
    p90: round(percentile(sorted, 0.9), 3),
    p99: round(percentile(sorted, 0.99), 3),
    max: round(n > 0 ? sorted[n - 1]! : Number.NaN, 3),
    mean: round(n > 0 ? sum / n : Number.NaN, 3),
  };
}
