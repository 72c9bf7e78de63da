/**
 * The state of each label set of a metric, found by walking one Map per label. prom-client builds
 * a key string from the labels on every inc/observe and looks it up as an object property, which
 * makes V8 internalize the fresh string: `recordTransaction` was 5 % of a REQMOD profile's samples,
 * ≈ 8 % of the event loop's busy time (BENCHMARKS.md, Session 5). Label values here come from a handful of config names and
 * constants, so the walk is a few Map hits on short strings and nothing is allocated once a set
 * has been seen.
 */
export class LabelSeries<T> {
  readonly #root = new Map<string, unknown>();
  readonly #all: T[] = [];

  constructor(
    readonly labelNames: readonly string[],
    private readonly create: (labels: Record<string, string>) => T,
  ) {}

  /** The state for these label values (in `labelNames` order), created on first use. */
  at(...values: string[]): T {
    let level = this.#root;
    const last = this.labelNames.length - 1;
    for (let i = 0; i < last; i++) {
      let next = level.get(values[i]!) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(values[i]!, next);
      }
      level = next;
    }
    const found = level.get(values[last]!) as T | undefined;
    if (found !== undefined) return found;
    const labels: Record<string, string> = {};
    this.labelNames.forEach((name, i) => (labels[name] = values[i]!));
    const created = this.create(labels);
    level.set(values[last]!, created);
    this.#all.push(created);
    return created;
  }

  /** Every label set seen, in first-use order. */
  all(): readonly T[] {
    return this.#all;
  }
}
