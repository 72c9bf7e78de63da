/**
 * ClamAV clamd (and Dr.Web ClamD, which speaks the same protocol) as a scanning backend
 * (DESIGN.md "Backends and pools"; shared/specs/clamd-protocol.md).
 *
 *   openStream() ─► InstreamScan: slot on an endpoint ─► connect ─► zINSTREAM\0 <len><bytes>… 0000
 *   scan(spool)  ─► the same, fed from body.createReadStream(); replayed once on another endpoint
 *                   when the connection failed or was lost
 *   HealthChecker: PING (+ VERSION) every health_interval_ms ─► endpoint health, backend version
 *
 * One connection per scan, no IDSESSION: simpler, and a failure never affects another scan.
 */
import { performance } from 'node:perf_hooks';
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../backend.js';
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import type { ClamdBackendConfig } from './clamd-config.js';
import { parseClamdEndpoint, type ClamdAddress } from './endpoint.js';
import { EndpointPool, type ClamdEndpoint } from './endpoint-pool.js';
import { HealthChecker } from './health.js';
import { InstreamScan, type InstreamDeps, type ScanFailure } from './instream-scan.js';

/** `version` before any endpoint answered VERSION. */
export const VERSION_UNAVAILABLE = 'clamd unavailable';
/** `version` when VERSION is disabled in the config or refused by clamd. */
export const VERSION_UNKNOWN = 'clamd unknown';

export type { ClamdBackendConfig } from './clamd-config.js';

/**
 * Starts the backend: parses the endpoints, checks each once (PING, VERSION) and schedules the
 * health checks. An endpoint that is down does not fail creation; it is marked unhealthy.
 */
export async function createClamdBackend(name: string, config: ClamdBackendConfig): Promise<Backend> {
  const addresses = config.endpoints.map((text): ClamdAddress => {
    const parsed = parseClamdEndpoint(text);
    if (!parsed.ok) throw new Error(`backend ${name}: endpoint ${JSON.stringify(text)}: ${parsed.reason}`);
    return parsed.address;
  });
  if (addresses.length === 0) throw new Error(`backend ${name}: no clamd endpoint`);

  const pool = new EndpointPool(addresses, { maxConcurrency: config.max_concurrency, maxQueue: config.max_queue }, config.read_timeout_ms);
  let version = config.version_command ? VERSION_UNAVAILABLE : VERSION_UNKNOWN;
  const health = new HealthChecker(pool.endpoints, config, () => {
    version = deriveVersion(pool.endpoints, config.version_command) ?? version;
  });
  const active = new Set<InstreamScan>();
  const deps: InstreamDeps = {
    backend: name,
    config,
    pool,
    probe: (endpoint) => health.ping(endpoint),
    checkEndpoint: (endpoint) => void health.check(endpoint),
    onDone: (scan) => active.delete(scan),
  };

  function start(signal: AbortSignal, connectAttempts: number, exclude?: ReadonlySet<ClamdEndpoint>): InstreamScan {
    const scan = new InstreamScan(deps, exclude === undefined ? { signal, connectAttempts } : { signal, connectAttempts, exclude });
    if (!scan.done) active.add(scan);
    return scan;
  }

  async function scanSpooled(body: SpooledBody, signal: AbortSignal, exclude?: ReadonlySet<ClamdEndpoint>): Promise<Attempt> {
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
    if (attempt.failure !== null && !signal.aborted && pool.endpoints.some((e) => !attempt.tried.has(e))) {
      attempt = await scanSpooled(body, signal, attempt.tried);
    }
    return { ...attempt.result, durationMs: performance.now() - started };
  }

  await health.start();

  return {
    name,
    get version() {
      return version;
    },
    scan,
    // Streaming retries a failed connect once elsewhere: nothing was sent yet at that point.
    openStream: (_meta: ScanMeta, signal: AbortSignal): StreamingScan => start(signal, 2),
    status: () => pool.endpoints.map((e) => e.status()),
    close: () => {
      health.stop();
      pool.close();
      for (const s of [...active]) s.abort('backend closed');
      return Promise.resolve();
    },
  };
}

interface Attempt {
  readonly result: BackendResult;
  readonly failure: ScanFailure;
  readonly tried: ReadonlySet<ClamdEndpoint>;
}

/**
 * `clamd <VERSION reply>` of the first healthy endpoint, in configured order, e.g.
 * `clamd ClamAV 1.4.6/27001/Sat Nov 21 09:41:47 2026`: the DB version is part of it, so the
 * ISTag changes with the signatures. null = nothing new (keep the last known value).
 */
function deriveVersion(endpoints: readonly ClamdEndpoint[], versionCommand: boolean): string | null {
  if (!versionCommand) return VERSION_UNKNOWN;
  for (const endpoint of endpoints) {
    if (!endpoint.healthy) continue;
    if (endpoint.version !== null) return `clamd ${endpoint.version}`;
    if (endpoint.versionRefused) return VERSION_UNKNOWN;
  }
  return null;
}
