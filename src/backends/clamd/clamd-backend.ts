/**
 * ClamAV clamd (and Dr.Web ClamD, which speaks the same protocol) as a scanning backend
 * (DESIGN.md "Backends and pools"; shared/specs/clamd-protocol.md).
 *
 *   openStream() ─► InstreamScan: lease on an endpoint ─► connect ─► zINSTREAM\0 <len><bytes>… 0000
 *   scan(spool)  ─► the same, fed from body.createReadStream(); replayed once on another endpoint
 *                   when the connection failed or was lost, or clamd's queue was full
 *   the generic pool (src/backends/pool/pooled-endpoints.ts): balancing, max_concurrency per
 *   endpoint, the wait queue, ejection, DNS mode; its active check is PING (+ VERSION) every
 *   health_interval_ms ─► endpoint health, and the backend version
 *
 * One connection per scan, no IDSESSION: simpler, and a failure never affects another scan.
 */
import { performance } from 'node:perf_hooks';
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../backend.js';
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import { PooledEndpoints } from '../pool/pooled-endpoints.js';
import type { ClamdBackendConfig } from './clamd-config.js';
import { ClamdEndpoint } from './clamd-endpoint.js';
import { parseClamdEndpoint } from './endpoint.js';
import { checkClamd, deriveVersion, ping, VERSION_UNAVAILABLE, VERSION_UNKNOWN } from './health.js';
import { InstreamScan, type InstreamDeps, type ScanFailure } from './instream-scan.js';

export { VERSION_UNAVAILABLE, VERSION_UNKNOWN } from './health.js';
export type { ClamdBackendConfig } from './clamd-config.js';

/**
 * Starts the backend: parses the endpoints, resolves DNS names (dns.enabled), checks each
 * endpoint once (PING, VERSION). An endpoint that is down does not fail creation; it is marked
 * unhealthy.
 */
export async function createClamdBackend(name: string, config: ClamdBackendConfig): Promise<Backend> {
  for (const text of config.endpoints) {
    const parsed = parseClamdEndpoint(text);
    if (!parsed.ok) throw new Error(`backend ${name}: endpoint ${JSON.stringify(text)}: ${parsed.reason}`);
  }
  if (config.endpoints.length === 0) throw new Error(`backend ${name}: no clamd endpoint`);

  const pool = await PooledEndpoints.create<ClamdEndpoint>({
    endpoints: config.endpoints,
    settings: config,
    locate: (text) => {
      const parsed = parseClamdEndpoint(text);
      return parsed.ok && parsed.address.kind === 'tcp' ? { host: parsed.address.host, port: parsed.address.port } : null;
    },
    open: (target) => ClamdEndpoint.fromTarget(target),
    check: ({ resource }, signal) => checkClamd(resource, config, signal),
    tuning: {
      // A scan waits for a slot no longer than it would wait for a verdict.
      queueTimeoutMs: config.read_timeout_ms,
      // Even marked down, an endpoint is tried when no other is up: the scan gets clamd's real
      // answer, and a revived clamd is used before its next PING.
      fallbackToUnhealthy: true,
    },
  });

  let lastVersion = config.version_command ? VERSION_UNAVAILABLE : VERSION_UNKNOWN;
  /** Derived on read from the endpoints' last VERSION; the last known value survives an outage. */
  const version = (): string => {
    const healthy = pool.endpoints.filter((e) => pool.isHealthy(e.target.id)).map((e) => e.resource);
    lastVersion = deriveVersion(healthy, config.version_command) ?? lastVersion;
    return lastVersion;
  };

  const active = new Set<InstreamScan>();
  const deps: InstreamDeps = {
    backend: name,
    config,
    pool,
    probe: (endpoint) => ping(endpoint, config),
    checkEndpoint: (id) => void pool.checkOne(id),
    onDone: (scan) => active.delete(scan),
  };

  function start(signal: AbortSignal, connectAttempts: number, exclude?: ReadonlySet<string>): InstreamScan {
    const scan = new InstreamScan(deps, exclude === undefined ? { signal, connectAttempts } : { signal, connectAttempts, exclude });
    if (!scan.done) active.add(scan);
    return scan;
  }

  async function scanSpooled(body: SpooledBody, signal: AbortSignal, exclude?: ReadonlySet<string>): Promise<Attempt> {
    const stream = start(signal, 1, exclude);
    const reader = body.createReadStream();
    try {
      for await (const chunk of reader) {
        if (stream.done) break;
        if (!stream.write(chunk as Buffer)) await new Promise<void>((resolve) => stream.onDrain(resolve));
      }
    } catch (err) {
      stream.abort(`reading the spooled body failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      reader.destroy();
    }
    return { result: await stream.end(), failure: stream.failure, tried: stream.tried };
  }

  async function scan(body: SpooledBody, _meta: ScanMeta, signal: AbortSignal): Promise<BackendResult> {
    const started = performance.now();
    if (body.size > config.stream_max_bytes) {
      // Spec §5: size uploads against StreamMaxLength before sending and fail fast.
      return { outcome: 'error', backend: name, durationMs: 0, kind: 'too-large', message: `body of ${body.size} bytes exceeds stream_max_bytes (${config.stream_max_bytes})` };
    }
    let attempt = await scanSpooled(body, signal);
    // The spool can be replayed, so a failed or lost connection gets one more try elsewhere.
    if (attempt.failure !== null && !signal.aborted && pool.endpoints.some((e) => !attempt.tried.has(e.target.id))) {
      attempt = await scanSpooled(body, signal, attempt.tried);
    }
    const result: BackendResult = { ...attempt.result, durationMs: performance.now() - started };
    // scan() already had its replay: its caller has nothing left to retry.
    if (result.outcome === 'error' && result.retryable) {
      const { retryable: _retried, ...final } = result;
      return final;
    }
    return result;
  }

  // The first round fixes health and `version` (it feeds the ISTag) before the first scan.
  await pool.checkNow();

  return {
    name,
    get version() {
      return version();
    },
    scan,
    // Streaming retries a failed connect once elsewhere: nothing was sent yet at that point.
    openStream: (_meta: ScanMeta, signal: AbortSignal): StreamingScan => start(signal, 2),
    status: () => pool.status(),
    close: async () => {
      for (const s of [...active]) s.abort('backend closed');
      await pool.close();
    },
  };
}

interface Attempt {
  readonly result: BackendResult;
  readonly failure: ScanFailure;
  readonly tried: ReadonlySet<string>;
}
