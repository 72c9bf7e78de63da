/**
 * What exited workers had counted, so that the cluster's /metrics never goes down. Prometheus reads
 * a counter that drops as a reset (rate() then counts the whole new value again), and a sum over
 * the live workers drops whenever a worker leaves it (killed, crashed, or stopping at shutdown)
 * while its replacement starts from zero. So the primary remembers each worker's last scraped
 * counters and histograms and, when it exits, folds them into "retired" totals that /metrics adds
 * to the live workers' sums.
 *
 * What is lost: what a worker counted after its last scrape (a worker never scraped contributes
 * nothing). The sums still never decrease: before the exit they held at most that last scrape.
 *
 * Only counters and histograms summed across workers (aggregator "sum") are kept; gauges describe
 * the processes that are running, and a dead worker's open connections are not open any more.
 */
import type { Worker } from 'node:cluster';
import type { MetricJson } from './messages.js';

/** A sample at run time: a histogram's also names its series (_bucket, _sum, _count), which prom-client's typings omit. */
type Sample = MetricJson['values'][number] & { metricName?: string };

interface RetiredMetric {
  readonly header: Omit<MetricJson, 'values'>;
  /** By sample name (a histogram has _bucket, _sum, _count) and label set. */
  readonly samples: Map<string, Sample>;
}

function isCumulative(metric: MetricJson): boolean {
  // At run time `type` is prom-client's string ("counter"), not the enum its typings declare.
  const type = metric.type as unknown as string;
  return (type === 'counter' || type === 'histogram') && (metric.aggregator ?? 'sum') === 'sum';
}

function sampleKey(name: string, sample: Sample): string {
  const labels = Object.entries(sample.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${sample.metricName ?? name}\n${JSON.stringify(labels)}`;
}

export class RetiredMetrics {
  /** Each live worker's last scrape, cumulative metrics only. */
  readonly #lastScrape = new Map<Worker, MetricJson[]>();
  readonly #retired = new Map<string, RetiredMetric>();

  /**
   * A worker answered a scrape. Call it as the answer arrives, before any later event (the
   * worker's exit) is handled: the exit must fold this answer, not the one before.
   */
  scraped(worker: Worker, metrics: readonly MetricJson[]): void {
    this.#lastScrape.set(worker, metrics.filter(isCumulative));
  }

  /** The worker exited: its last scrape joins the retired totals. */
  retire(worker: Worker): void {
    const last = this.#lastScrape.get(worker);
    this.#lastScrape.delete(worker);
    for (const metric of last ?? []) {
      let retired = this.#retired.get(metric.name);
      if (retired === undefined) {
        const { values: _values, ...header } = metric;
        this.#retired.set(metric.name, (retired = { header, samples: new Map() }));
      }
      for (const sample of metric.values as Sample[]) {
        const key = sampleKey(metric.name, sample);
        const sum = retired.samples.get(key);
        retired.samples.set(key, { ...sample, value: (sum?.value ?? 0) + sample.value });
      }
    }
  }

  /** The retired totals as one more "worker" for AggregatorRegistry.aggregate (a copy). */
  snapshot(): MetricJson[] {
    return [...this.#retired.values()].map(({ header, samples }) => ({ ...header, values: [...samples.values()].map((s) => ({ ...s })) }) as MetricJson);
  }
}
