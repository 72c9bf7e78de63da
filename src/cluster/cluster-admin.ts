/**
 * What the primary's admin listener serves for a cluster: /metrics is every ready worker's
 * registry merged with prom-client's AggregatorRegistry.aggregate (counters and histograms summed,
 * gauges by their `aggregator`, src/observability/metrics.ts), plus what exited workers had
 * counted (retired-metrics.ts), plus the primary's own cluster gauges; /readyz is ready only when
 * every configured worker is up and says it is ready.
 *
 * A live worker that does not answer makes /metrics fail (500) rather than serve partial sums:
 * counters that drop for one scrape look like resets to Prometheus. One that exits meanwhile is
 * left out: its last answer is in the retired totals by then.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { MetricsSource, Readiness } from '../observability/admin-server.js';
import type { MetricJson } from './messages.js';
import { RetiredMetrics } from './retired-metrics.js';
import type { WorkerRequests } from './worker-requests.js';

const ASK_TIMEOUT_MS = 3000;

export interface ClusterView {
  /** Workers the configuration asks for. */
  expected(): number;
  /** Workers that said they are ready and have not exited. */
  readyWorkers(): Worker[];
}

export interface ClusterAdmin {
  readonly metrics: MetricsSource;
  readiness(): Promise<Readiness>;
  recordRestart(): void;
  /** A worker exited (call before its pending requests are failed): what it counted is kept. */
  workerExited(worker: Worker): void;
}

export function createClusterAdmin(view: ClusterView, requests: WorkerRequests): ClusterAdmin {
  const own = new Registry();
  new Gauge({
    name: 'icap_bridge_cluster_workers',
    help: 'Server processes (cluster workers) that are up and ready.',
    registers: [own],
    collect() {
      this.set(view.readyWorkers().length);
    },
  });
  new Gauge({
    name: 'icap_bridge_cluster_workers_expected',
    help: 'Server processes the configuration asks for (server.processes).',
    registers: [own],
    collect() {
      this.set(view.expected());
    },
  });
  const restarts = new Counter({
    name: 'icap_bridge_cluster_worker_restarts_total',
    help: 'Workers started again after one exited unexpectedly.',
    registers: [own],
  });

  const retired = new RetiredMetrics();
  const exited = new WeakSet<Worker>();

  /** A worker's metrics, kept for retirement as they arrive; null if it exited instead of answering. */
  async function scrape(worker: Worker): Promise<MetricJson[] | null> {
    try {
      const { metrics } = await requests.ask(worker, (requestId) => ({ type: 'icap-bridge:metrics', requestId }), 'icap-bridge:metrics', ASK_TIMEOUT_MS);
      // Recorded in the turn the answer arrived, so an exit handled later folds this answer.
      retired.scraped(worker, metrics);
      return metrics;
    } catch (err) {
      if (exited.has(worker)) return null;
      throw err;
    }
  }

  return {
    metrics: {
      contentType: own.contentType,
      async metrics() {
        const workers = view.readyWorkers();
        const perWorker = await Promise.all(workers.map(scrape));
        // One that answered, then exited while the others were answering, is in `retired` now:
        // counting its answer too would count it twice (and the next scrape would go down).
        const live = perWorker.filter((m, i): m is MetricJson[] => m !== null && !exited.has(workers[i]!));
        const merged = AggregatorRegistry.aggregate([...live, retired.snapshot()]);
        const [summed, primary] = await Promise.all([merged.metrics(), own.metrics()]);
        return `${summed.trimEnd()}\n\n${primary}`;
      },
    },

    async readiness() {
      const workers = view.readyWorkers();
      const problems: Record<string, string> = {};
      if (workers.length < view.expected()) problems['workers'] = `${workers.length} of ${view.expected()} worker processes ready`;
      const answers = await Promise.allSettled(
        workers.map((w) => requests.ask(w, (requestId) => ({ type: 'icap-bridge:readiness', requestId }), 'icap-bridge:readiness', ASK_TIMEOUT_MS)),
      );
      answers.forEach((a, i) => {
        const pid = workers[i]!.process.pid;
        if (a.status === 'rejected') {
          problems[`worker ${pid}`] = 'did not answer';
          return;
        }
        for (const [what, why] of Object.entries(a.value.readiness.problems)) problems[what] = `${why} (worker ${pid})`;
      });
      return { ready: Object.keys(problems).length === 0, problems };
    },

    recordRestart() {
      restarts.inc();
    },

    workerExited(worker) {
      exited.add(worker);
      retired.retire(worker);
    },
  };
}
