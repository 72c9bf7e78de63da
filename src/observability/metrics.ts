/**
 * Prometheus metrics (DESIGN.md "Operations"; c-icap's request.c counters as the model of what
 * operators ask about). One registry per server instance so tests and reloads never collide.
 * Everything is fed from access records and periodic reads of live state; nothing on the
 * per-byte path. Each process has its own registry; with server.processes > 1 the primary serves
 * their aggregate (src/cluster/cluster-metrics.ts), so every counter and gauge here is per process.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BatchedCounter } from './batched-counter.js';
import { BoundedLabels } from './bounded-labels.js';
import { LabeledHistogram } from './labeled-histogram.js';
import type { Backend } from '../backends/backend.js';
import type { AccessRecord } from './access-log.js';

export interface LiveState {
  openConnections(): number;
  backends(): ReadonlyMap<string, Backend>;
  spoolBytesOnDisk(): number;
}

export interface Metrics {
  readonly registry: Registry;
  recordTransaction(record: AccessRecord): void;
  recordOptions(service: string, status: number): void;
  recordRejectedConnection(reason: string): void;
  recordProtocolError(status: number): void;
}

/** ICAP statuses as label values, made once each rather than per transaction. */
const STATUS_LABELS = new Map<number, string>();
function statusLabel(status: number): string {
  let label = STATUS_LABELS.get(status);
  if (label === undefined) STATUS_LABELS.set(status, (label = String(status)));
  return label;
}

/**
 * Endpoints per backend with their own scan-duration series (bounded-labels.ts). Static lists are
 * a handful; 32 leaves room for a DNS name's records over many re-resolutions.
 */
export const MAX_ENDPOINT_SERIES = 32;

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export function createMetrics(live: LiveState): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'icap_bridge_process_' });

  // Fed once per transaction: batched counters and our histogram (label-series.ts says why).
  const transactions = new BatchedCounter({
    name: 'icap_bridge_transactions_total',
    help: 'ICAP transactions by method, service, ICAP status and verdict (OPTIONS included, verdict "none").',
    labelNames: ['method', 'service', 'status', 'verdict'],
    registry,
  });
  const bytesIn = new BatchedCounter({ name: 'icap_bridge_bytes_in_total', help: 'Bytes received in REQMOD/RESPMOD transactions.', labelNames: ['service'], registry });
  const bytesOut = new BatchedCounter({ name: 'icap_bridge_bytes_out_total', help: 'Bytes sent in REQMOD/RESPMOD answers.', labelNames: ['service'], registry });
  const duration = new LabeledHistogram(
    'icap_bridge_transaction_duration_seconds',
    'Time from the ICAP request head to the end of the answer.',
    ['method', 'service'],
    DURATION_BUCKETS,
    registry,
  );
  const scanDuration = new LabeledHistogram(
    'icap_bridge_scan_duration_seconds',
    'Time one backend endpoint took to scan one body (per-endpoint latency).',
    ['backend', 'endpoint', 'outcome'],
    DURATION_BUCKETS,
    registry,
  );
  const scanEndpoints = new BoundedLabels(MAX_ENDPOINT_SERIES);
  const rejected = new Counter({ name: 'icap_bridge_connections_rejected_total', help: 'Connections refused (503) past Max-Connections.', labelNames: ['reason'] as const, registers: [registry] });
  // Issue 5 content handling, counted from the access record's cache / decoding / multipart fields.
  const verdictCache = new BatchedCounter({
    name: 'icap_bridge_verdict_cache_lookups_total',
    help: 'Body-end scans by verdict cache use: hit (answered without scanning), miss, bypass.',
    labelNames: ['service', 'result'],
    registry,
  });
  const contentDecoding = new Counter({
    name: 'icap_bridge_content_decoding_total',
    help: 'Content-Encoding bodies decoded for scanning, by outcome (decoded, decompression-bomb, corrupt, ...).',
    labelNames: ['service', 'outcome'] as const,
    registers: [registry],
  });
  const multipartUploads = new Counter({
    name: 'icap_bridge_multipart_uploads_total',
    help: 'multipart/form-data uploads split into parts for scanning, by outcome (split, malformed, ...).',
    labelNames: ['service', 'outcome'] as const,
    registers: [registry],
  });
  // A piece of a file (policy/byte-range.ts) is never scanned whole: how many went through, and how they ended.
  const partialBodies = new Counter({
    name: 'icap_bridge_partial_bodies_total',
    help: 'Bodies that were a piece of a file (a 206 range, a partial PUT), by verdict: each was scanned, or ruled on, alone.',
    labelNames: ['service', 'verdict'] as const,
    registers: [registry],
  });
  const protocolErrors = new Counter({ name: 'icap_bridge_protocol_errors_total', help: 'Requests answered with an ICAP error status before any transaction ran.', labelNames: ['status'] as const, registers: [registry] });

  new Gauge({
    name: 'icap_bridge_connections_open',
    help: 'Open ICAP connections.',
    registers: [registry],
    collect() {
      this.set(live.openConnections());
    },
  });
  new Gauge({
    name: 'icap_bridge_spool_bytes_on_disk',
    help: 'Bytes of bodies currently spooled to temp files.',
    registers: [registry],
    collect() {
      this.set(live.spoolBytesOnDisk());
    },
  });
  // With several server processes (src/cluster/), the primary sums each metric over the workers
  // (prom-client AggregatorRegistry); `aggregator` overrides that where a sum would mislead.
  const endpointGauge = (
    name: string,
    help: string,
    pick: (s: { healthy: boolean; inFlight: number; queued: number }) => number,
    aggregator: 'sum' | 'min' = 'sum',
  ): void => {
    new Gauge({
      name,
      help,
      labelNames: ['backend', 'endpoint'] as const,
      registers: [registry],
      aggregator,
      collect() {
        this.reset();
        for (const [backend, b] of live.backends()) {
          for (const s of b.status()) this.set({ backend, endpoint: s.endpoint }, pick(s));
        }
      },
    });
  };
  // Up only when every process sees it up.
  endpointGauge('icap_bridge_backend_endpoint_up', 'Whether a backend endpoint is healthy (1) or not (0).', (s) => (s.healthy ? 1 : 0), 'min');
  endpointGauge('icap_bridge_backend_endpoint_in_flight', 'Scans running on a backend endpoint.', (s) => s.inFlight);
  endpointGauge('icap_bridge_backend_endpoint_queued', 'Scans waiting for a backend endpoint (for builtin: the worker pool queue).', (s) => s.queued);

  return {
    registry,
    recordTransaction(r) {
      transactions.at(r.method, r.service, statusLabel(r.icap_status), r.verdict).add();
      bytesIn.at(r.service).add(r.bytes_in);
      bytesOut.at(r.service).add(r.bytes_out);
      duration.at(r.method, r.service).observe(r.duration_ms / 1000);
      for (const s of r.scans) scanDuration.at(s.backend, scanEndpoints.label(s.backend, s.endpoint ?? ''), s.outcome).observe(s.ms / 1000);
      if (r.cache !== undefined) verdictCache.at(r.service, r.cache).add();
      if (r.decoding !== undefined) contentDecoding.inc({ service: r.service, outcome: r.decoding.outcome });
      if (r.multipart !== undefined) multipartUploads.inc({ service: r.service, outcome: r.multipart.outcome });
      if (r.partial !== undefined) partialBodies.inc({ service: r.service, verdict: r.verdict });
    },
    recordOptions(service, status) {
      transactions.at('OPTIONS', service, statusLabel(status), 'none').add();
    },
    recordRejectedConnection(reason) {
      rejected.inc({ reason });
    },
    recordProtocolError(status) {
      protocolErrors.inc({ status: String(status) });
    },
  };
}
