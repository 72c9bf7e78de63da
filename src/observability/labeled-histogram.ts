/**
 * A Prometheus histogram whose per-request `observe` costs a few Map hits (LabelSeries) instead of
 * prom-client's label hashing. It registers in a prom-client Registry like any metric and exposes
 * exactly what prom-client's Histogram would (text and JSON, so the cluster aggregator sums it);
 * test/observability/labeled-histogram.test.ts holds the two side by side.
 *
 * Only `observe` is ours: exposition stays prom-client's (Registry formats what `get` returns).
 */
import type { Metric, Registry } from 'prom-client';
import { LabelSeries } from './label-series.js';

export interface HistogramSeries {
  observe(value: number): void;
}

class Series implements HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Record<string, string>,
    private readonly upperBounds: readonly number[],
  ) {
    this.counts = new Float64Array(upperBounds.length + 1);
  }

  observe(value: number): void {
    // prom-client rejects a non-finite value with a TypeError; a metric must never break a
    // transaction, so such a value is not counted at all.
    if (!Number.isFinite(value)) return;
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** One exported sample, in the shape prom-client's Registry formats. */
interface Sample {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
}

export class LabeledHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series: LabelSeries<Series>;

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    private readonly upperBounds: readonly number[],
    registry: Registry,
  ) {
    this.#series = new LabelSeries(labelNames, (labels) => new Series(labels, upperBounds));
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values, in the order of the label names given. */
  at(...labelValues: string[]): HistogramSeries {
    return this.#series.at(...labelValues);
  }

  /** For the text exposition: `le` as the sample's label, the series' labels shared (prom-client's order). */
  getForPromString(): { name: string; help: string; type: string; values: Sample[]; aggregator: string } {
    const values: Sample[] = [];
    for (const s of this.#series.all()) {
      let cumulative = 0;
      this.upperBounds.forEach((bound, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le: bound }, sharedLabels: s.labels, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** For getMetricsAsJSON (the cluster's aggregation): the shared labels folded into each sample's. */
  get(): { name: string; help: string; type: string; values: Sample[]; aggregator: string } {
    const data = this.getForPromString();
    data.values = data.values.map(({ labels, sharedLabels, value, metricName }) => ({
      labels: { ...labels, ...sharedLabels },
      value,
      metricName,
    }));
    return data;
  }

  /**
   * Registry.resetMetrics() calls this (nothing in icap-bridge does). Unlike prom-client's, the label
   * sets seen stay listed, at zero: LabelSeries never forgets one.
   */
  reset(): void {
    for (const s of this.#series.all()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
