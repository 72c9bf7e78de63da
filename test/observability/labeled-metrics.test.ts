/**
 * LabeledHistogram and BatchedCounter against prom-client's own Histogram and Counter: fed the
 * same observations, a scrape (text), getMetricsAsJSON and the cluster's aggregate must read the
 * same, since dashboards and the cluster primary (src/cluster/cluster-metrics.ts) read them.
 */
import { describe, expect, it } from 'vitest';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { BatchedCounter } from '../../src/observability/batched-counter.js';
import { LabeledHistogram } from '../../src/observability/labeled-histogram.js';
import { LabelSeries } from '../../src/observability/label-series.js';

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];
// On a bound (counted in that bucket: le is "less or equal"), between bounds, above every bound, zero.
const VALUES = [0, 0.001, 0.0010001, 0.005, 0.01, 0.5, 1, 9.99, 10, 10.5, 1234];
const LABEL_SETS: [string, string][] = [
  ['REQMOD', 'reqmod'],
  ['RESPMOD', 'respmod'],
  ['RESPMOD', 'odd "name"\\ with\nnewline'],
];

/** prom-client's JSON carries `exemplar: null` per bucket; it is not part of what is exposed. */
const withoutExemplars = (metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>): unknown =>
  JSON.parse(JSON.stringify(metrics, (key, value: unknown) => (key === 'exemplar' ? undefined : value)));

async function both(feed: (observe: (labels: [string, string], value: number) => void) => void): Promise<[Registry, Registry]> {
  const theirs = new Registry();
  const ours = new Registry();
  const reference = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['method', 'service'], buckets: BUCKETS, registers: [theirs] });
  const histogram = new LabeledHistogram('x_seconds', 'h', ['method', 'service'], BUCKETS, ours);
  feed(([method, service], value) => {
    reference.observe({ method, service }, value);
    histogram.at(method, service).observe(value);
  });
  return [theirs, ours];
}

describe('LabeledHistogram', () => {
  it('exposes what prom-client Histogram exposes, as text, as JSON and aggregated', async () => {
    const [theirs, ours] = await both((observe) => {
      LABEL_SETS.forEach((labels, i) => VALUES.slice(i).forEach((v) => observe(labels, v)));
    });
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('x_seconds_bucket{le="0.001",method="REQMOD",service="reqmod"} 2');
    expect(text).toContain('x_seconds_count{method="REQMOD",service="reqmod"} 11');
    const [jsonTheirs, jsonOurs] = [await theirs.getMetricsAsJSON(), await ours.getMetricsAsJSON()];
    expect(withoutExemplars(jsonOurs)).toEqual(withoutExemplars(jsonTheirs));
    // The cluster primary sums the workers' JSON.
    const aggregated = async (json: typeof jsonOurs): Promise<string> => AggregatorRegistry.aggregate([json, json]).metrics();
    expect(await aggregated(jsonOurs)).toBe(await aggregated(jsonTheirs));
    expect(await aggregated(jsonOurs)).toContain('x_seconds_count{method="REQMOD",service="reqmod"} 22');
  });

  it('shows nothing before the first observation, like prom-client', async () => {
    const [theirs, ours] = await both(() => {});
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('drops a non-finite value instead of throwing (prom-client throws; a metric must not fail a transaction)', async () => {
    const registry = new Registry();
    const h = new LabeledHistogram('y_seconds', 'h', ['service'], BUCKETS, registry);
    expect(() => h.at('s').observe(Number.NaN)).not.toThrow();
    h.at('s').observe(Number.POSITIVE_INFINITY);
    h.at('s').observe(2);
    expect(await registry.metrics()).toContain('y_seconds_count{service="s"} 1');
  });
});

describe('BatchedCounter', () => {
  it('reads the same as a prom-client Counter incremented directly, across several scrapes', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const reference = new Counter({ name: 'bytes_total', help: 'b', labelNames: ['service', 'status'], registers: [theirs] });
    const counter = new BatchedCounter({ name: 'bytes_total', help: 'b', labelNames: ['service', 'status'], registry: ours });
    const add = (service: string, status: string, n?: number): void => {
      reference.inc({ service, status }, n);
      counter.at(service, status).add(n);
    };
    add('reqmod', '204');
    add('reqmod', '204', 120);
    add('respmod', '200', 0); // a set incremented by 0 is shown, with 0
    expect(await ours.metrics()).toBe(await theirs.metrics());
    add('reqmod', '204', 5);
    add('a"b', '500');
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // A scrape with nothing new changes nothing.
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('bytes_total{service="reqmod",status="204"} 126');
    expect(await ours.metrics()).toContain('bytes_total{service="respmod",status="200"} 0');
    expect(withoutExemplars(await ours.getMetricsAsJSON())).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
  });

  it('drops a negative or non-finite amount instead of throwing at the next scrape', async () => {
    const registry = new Registry();
    const c = new BatchedCounter({ name: 'z_total', help: 'z', labelNames: ['service'], registry });
    c.at('s').add(-1);
    c.at('s').add(Number.NaN);
    c.at('s').add(2);
    expect(await registry.metrics()).toContain('z_total{service="s"} 2');
  });
});

describe('LabelSeries', () => {
  it('gives one state per label set, the same object each time, with its labels', () => {
    const series = new LabelSeries(['a', 'b'], (labels) => ({ labels }));
    const x = series.at('1', '2');
    expect(series.at('1', '2')).toBe(x);
    expect(series.at('1', '3')).not.toBe(x);
    expect(series.at('2', '2')).not.toBe(x);
    expect(x.labels).toEqual({ a: '1', b: '2' });
    expect(series.all()).toHaveLength(3);
  });

  it('works with a single label', () => {
    const series = new LabelSeries(['only'], (labels) => ({ labels }));
    expect(series.at('v')).toBe(series.at('v'));
    expect(series.at('v').labels).toEqual({ only: 'v' });
  });
});

describe('scan-duration series per backend endpoint', () => {
  it('are bounded: endpoints past MAX_ENDPOINT_SERIES (DNS re-resolutions) share the "other" series and are still counted', async () => {
    const { createMetrics, MAX_ENDPOINT_SERIES } = await import('../../src/observability/metrics.js');
    const metrics = createMetrics({ openConnections: () => 0, backends: () => new Map(), spoolBytesOnDisk: () => 0 });
    const scanned = MAX_ENDPOINT_SERIES + 40;
    for (let i = 0; i < scanned; i++) {
      const endpoint = `10.0.${i >> 8}.${i & 0xff}:3310`;
      metrics.recordTransaction({
        method: 'RESPMOD', service: 'respmod', icap_status: 204, verdict: 'clean', bytes_in: 1, bytes_out: 1, duration_ms: 1,
        scans: [{ backend: 'clamd', endpoint, outcome: 'clean', ms: 1 }],
      } as never);
    }
    const text = await metrics.registry.metrics();
    const counts = text.split('\n').filter((l) => l.startsWith('icap_bridge_scan_duration_seconds_count{'));
    expect(counts).toHaveLength(MAX_ENDPOINT_SERIES + 1);
    expect(text).toContain('icap_bridge_scan_duration_seconds_count{backend="clamd",endpoint="other",outcome="clean"} 40');
    const total = counts.reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    expect(total).toBe(scanned);
  });
});
