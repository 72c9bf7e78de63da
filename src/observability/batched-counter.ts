/**
 * A prom-client Counter fed through LabelSeries: a per-request `add` only adds to its label set's
 * pending amount, which reaches the Counter when the Counter is read (its `collect`, run by every
 * scrape and by the cluster's aggregation). The per-request path so skips prom-client's label
 * hashing (label-series.ts says what that cost); what a scrape shows is the same.
 */
import { Counter, type Registry } from 'prom-client';
import { LabelSeries } from './label-series.js';

export interface CounterSeries {
  add(amount?: number): void;
}

class Pending implements CounterSeries {
  amount = 0;
  /** Whether the Counter has this label set yet (prom-client shows a set once incremented, even by 0). */
  known = false;
  constructor(readonly labels: Record<string, string>) {}

  add(amount = 1): void {
    // Counter.inc throws on a negative or non-finite amount; a metric must never break a
    // transaction (nor the scrape that would meet it), so such an amount is dropped here.
    if (amount > 0 && Number.isFinite(amount)) this.amount += amount;
  }
}

export class BatchedCounter {
  readonly #series: LabelSeries<Pending>;

  constructor(config: { name: string; help: string; labelNames: readonly string[]; registry: Registry }) {
    const series = new LabelSeries(config.labelNames, (labels) => new Pending(labels));
    this.#series = series;
    new Counter({
      name: config.name,
      help: config.help,
      labelNames: config.labelNames,
      registers: [config.registry],
      collect() {
        for (const s of series.all()) {
          if (s.amount === 0 && s.known) continue;
          this.inc(s.labels, s.amount);
          s.amount = 0;
          s.known = true;
        }
      },
    });
  }

  /** The series of these label values, in the order of the label names given. */
  at(...labelValues: string[]): CounterSeries {
    return this.#series.at(...labelValues);
  }
}
