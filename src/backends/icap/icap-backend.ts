/**
 * Another ICAP server as the scanner (DESIGN.md "Backends and pools"; shared/specs/
 * other-engines.md §9): Symantec SPE, Kaspersky, ESET, c-icap with virus_scan, another
 * icap-bridge. The bridge is the ICAP client here.
 *
 *   openStream() ─► LiveBody fed by the transaction ─► attempt on a pool endpoint:
 *   scan(spool)  ─► spooled body                     ─┘  OPTIONS (cached per Options-TTL) ─►
 *                     REQMOD/RESPMOD with the preview it asks for ─► 100 ─► the rest ─► answer
 *                     (exchange.ts) ─► verdict (answer-map.ts); connection back to the idle pool
 *   the generic pool (src/backends/pool/pooled-endpoints.ts): balancing, max_concurrency, the
 *   wait queue, ejection, DNS mode; the active check is OPTIONS, which also keeps the ISTag
 *   (this backend's `version`) current; a connect failure or a 503 is retried once elsewhere
 *   (withFailover) while the body can be replayed.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import type { Backend, BackendResult, ScanErrorKind, ScanMeta, StreamingScan } from '../backend.js';
import { PoolUnavailableError, type EndpointHealthChange } from '../pool/endpoint-pool.js';
import { withFailover } from '../pool/failover.js';
import { PooledEndpoints } from '../pool/pooled-endpoints.js';
import { scanDeadline, type ScanDeadline } from '../scan-deadline.js';
import { spooledSource, type BodySource } from './body-source.js';
import { declaredLength } from './http-heads.js';
import type { IcapBackendConfig } from './icap-config.js';
import { parseIcapUrl, type IcapUrl } from './icap-url.js';
import { LiveBody } from './live-body.js';
import { slidingDeadline } from './sliding-deadline.js';
import { UpstreamEndpoint } from './upstream-endpoint.js';
import { attemptOnEndpoint } from './upstream-scan.js';

export type { IcapBackendConfig } from './icap-config.js';

/** `version` before any endpoint answered OPTIONS with an ISTag. */
export const VERSION_UNAVAILABLE = 'icap unavailable';

/** Body bytes of a streaming scan kept for a replay elsewhere (a preview is usually ≤ 4 KiB). */
const RETAIN_BYTES = 128 * 1024;
/** Unsent body bytes a streaming scan holds before write() says "wait". */
const HIGH_WATER_BYTES = 64 * 1024;

export interface IcapBackend extends Backend {
  /** Per endpoint id: connections opened so far and idle now (tests, diagnostics). */
  connectionStats(): Record<string, { opened: number; idle: number; active: number }>;
}

export interface IcapBackendOptions {
  /** Told once per change of an endpoint's health (up ↔ down), with why. */
  readonly onHealthChange?: (change: EndpointHealthChange) => void;
}

/**
 * Starts the backend: parses the endpoints, resolves DNS names (dns.enabled), asks each endpoint
 * OPTIONS once so the ISTag is known before services compute theirs. An endpoint that is down
 * does not fail creation; it is marked unhealthy.
 */

export async function createIcapBackend(name: string, config: IcapBackendConfig, options: IcapBackendOptions = {}): Promise<IcapBackend> {
  const urls = new Map<string, IcapUrl>();
  for (const text of config.endpoints) {
    const parsed = parseIcapUrl(text);
    if (!parsed.ok) throw new Error(`backend ${name}: endpoint ${JSON.stringify(text)}: ${parsed.reason}`);
    urls.set(text, parsed.url);
  }
  if (urls.size === 0) throw new Error(`backend ${name}: no icap endpoint`);
  const ca = config.tls.ca_file === '' ? undefined : readFileSync(config.tls.ca_file);

  /** ISTag per configured endpoint text: kept through outages and DNS changes. */
  const istags = new Map<string, string>();
  const closing = new AbortController();

  const pool = await PooledEndpoints.create<UpstreamEndpoint>({
    endpoints: config.endpoints,
    settings: config,
    locate: (text) => {
      const url = urls.get(text);
      return url === undefined ? null : { host: url.host, port: url.port };
    },
    open: (target) => {
      const endpoint: UpstreamEndpoint = new UpstreamEndpoint(target, urls.get(target.configured)!, {
        connectTimeoutMs: config.connect_timeout_ms,
        optionsTimeoutMs: config.timeout_ms,
        maxIdle: config.max_concurrency,
        tls: { ca, rejectUnauthorized: config.tls.reject_unauthorized },
        onIstag: () => {
          if (endpoint.istag !== null) istags.set(target.configured, endpoint.istag);
        },
      });
      return endpoint;
    },
    dispose: (endpoint) => endpoint.close(),
    // OPTIONS is the health check (other-engines.md §9), and refreshes the cached answer.
    check: ({ resource }, signal) => resource.refreshOptions(signal).then((r) => r.ok),
    ...(options.onHealthChange && { onHealthChange: options.onHealthChange }),
    tuning: {
      // A down endpoint is still tried when no other is up: the scan gets the real reason.
      fallbackToUnhealthy: true,
      queueTimeoutMs: config.timeout_ms,
    },
  });
  await pool.checkNow();

  async function run(source: BodySource, meta: ScanMeta, deadline: ScanDeadline, started: number): Promise<BackendResult> {
    const error = (kind: ScanErrorKind, message: string): BackendResult => ({ outcome: 'error', backend: name, durationMs: performance.now() - started, kind, message });
    try {
      const result = await withFailover(pool, deadline.signal, (lease) =>
        attemptOnEndpoint(lease.resource, {
          backend: name,
          meta,
          source,
          signal: deadline.signal,
          timedOut: deadline.timedOut,
          previewOverride: config.preview_bytes,
        }),
      );
      return { ...result, durationMs: performance.now() - started };
    } catch (err) {
      if (err instanceof PoolUnavailableError) {
        if (err.kind !== 'aborted') return error(err.kind, err.message);
        return deadline.timedOut() ? error('timeout', `no endpoint free within timeout_ms (${config.timeout_ms} ms)`) : error('backend-error', 'scan aborted');
      }
      return error('backend-error', err instanceof Error ? err.message : String(err));
    } finally {
      deadline.clear();
    }
  }

  const tooLarge = (size: number, started: number, sent = 'not sent'): BackendResult => ({
    outcome: 'error',
    backend: name,
    durationMs: performance.now() - started,
    kind: 'too-large',
    message: `body of ${size} bytes exceeds max_body_bytes (${config.max_body_bytes}); ${sent}`,
  });
  const overLimit = (size: number): boolean => config.max_body_bytes > 0 && size > config.max_body_bytes;

  function scan(body: SpooledBody, meta: ScanMeta, signal: AbortSignal): Promise<BackendResult> {
    const started = performance.now();
    if (overLimit(body.size)) return Promise.resolve(tooLarge(body.size, started));
    return run(spooledSource(body), meta, scanDeadline(config.timeout_ms, signal, closing.signal), started);
  }

  function openStream(meta: ScanMeta, signal: AbortSignal): StreamingScan {
    const started = performance.now();
    const live = new LiveBody(RETAIN_BYTES, HIGH_WATER_BYTES);
    const stop = new AbortController();
    const deadline = slidingDeadline(config.timeout_ms, signal, stop.signal, closing.signal);
    let limited: BackendResult | null = null;
    const declared = declaredLength(meta);
    // The head already says the body is too big: do not start sending it.
    if (declared !== null && overLimit(declared)) limited = tooLarge(declared, started, 'not sent (Content-Length)');
    const result =
      limited !== null
        ? Promise.resolve(limited)
        : run(live, meta, deadline, started).then((r) => {
            // Decided (perhaps early, on the preview): the rest of the body is not needed.
            live.fail(new Error('scan finished'));
            return r;
          });
    if (limited !== null) {
      live.fail(new Error('too large'));
      deadline.clear();
    }
    return {
      write(chunk) {
        deadline.touch();
        if (limited === null && overLimit(live.bytes + chunk.length)) {
          limited = tooLarge(live.bytes + chunk.length, started, 'the upstream exchange was abandoned');
          stop.abort(new Error('body exceeds max_body_bytes'));
          live.fail(new Error('too large'));
        }
        return live.write(chunk);
      },
      onDrain: (listener) => live.onDrain(listener),
      async end() {
        if (!live.ended) deadline.touch();
        live.end();
        const r = await result;
        return limited ?? r;
      },
      abort(reason) {
        stop.abort(new Error(reason));
        live.fail(new Error(reason));
      },
    };
  }

  return {
    name,
    get version() {
      return istags.size === 0 ? VERSION_UNAVAILABLE : `icap ${[...new Set(istags.values())].sort().join(' ')}`;
    },
    scan,
    openStream,
    status: () => pool.status(),
    connectionStats: () =>
      Object.fromEntries(pool.endpoints.map((e) => [e.target.id, { opened: e.resource.opened, idle: e.resource.idleConnections, active: e.resource.active }])),
    close: async () => {
      closing.abort(new Error('backend closed'));
      await pool.close();
    },
  };
}
