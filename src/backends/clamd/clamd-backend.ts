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
 *
 * `transfer: path` (path-transfer.ts): no openStream, so the transaction spools the whole body;
 * scan() then has clamd read the file (zSCAN <path>) on the same kind of lease and connection,
 * and sends the bytes by INSTREAM only when clamd cannot read the file.
 */
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../backend.js';
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import type { EndpointHealthChange } from '../pool/endpoint-pool.js';
import { PooledEndpoints } from '../pool/pooled-endpoints.js';
import type { ClamdBackendConfig } from './clamd-config.js';
import { ClamdEndpoint } from './clamd-endpoint.js';
import { parseClamdEndpoint } from './endpoint.js';
import { checkClamd, deriveVersion, ping, VERSION_UNAVAILABLE, VERSION_UNKNOWN } from './health.js';
import { InstreamScan, type InstreamDeps, type InstreamOptions, type ScanAttempt } from './instream-scan.js';
import { PathTransfer, type PathTransferStatus } from './path-transfer.js';

export { VERSION_UNAVAILABLE, VERSION_UNKNOWN } from './health.js';
export type { ClamdBackendConfig } from './clamd-config.js';
export type { PathTransferStatus } from './path-transfer.js';

export interface ClamdBackendOptions {
  /** spool.directory: `transfer: path` writes in-memory bodies there for clamd to read. Default: the OS temp dir. */
  readonly spoolDirectory?: string;
  /**
   * Receives the one warning per backend when `transfer: path` falls back to INSTREAM. Default:
   * process.emitWarning (stderr), as backends have no logger.
   */
  readonly warn?: (message: string) => void;
  /** Told once per change of an endpoint's health (up ↔ down), with why. */
  readonly onHealthChange?: (change: EndpointHealthChange) => void;
}

export interface ClamdBackend extends Backend {
  /** How bodies reached clamd so far (`transfer: path` counts its fallbacks to INSTREAM). */
  transferStatus(): PathTransferStatus;
}

const warnOnStderr = (message: string): void => process.emitWarning(message, { code: 'ICAP_BRIDGE_CLAMD_PATH_FALLBACK' });

/**
 * Starts the backend: parses the endpoints, resolves DNS names (dns.enabled), checks each
 * endpoint once (PING, VERSION). An endpoint that is down does not fail creation; it is marked
 * unhealthy.
 */
export async function createClamdBackend(name: string, config: ClamdBackendConfig, options: ClamdBackendOptions = {}): Promise<ClamdBackend> {
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
    ...(options.onHealthChange && { onHealthChange: options.onHealthChange }),
    tuning: {
      // A scan waits for a slot no longer than it would wait for a verdict.
      queueTimeoutMs: config.read_timeout_ms,
      // Even marked down, an endpoint is tried when no other is up: the scan gets clamd's real
      // answer, and a revived clamd is used before its next PING.
      fallbackToUnhealthy: true,
    },
  });

  const isHealthy = (id: string): boolean => pool.isHealthy(id);
  let lastVersion = config.version_command ? VERSION_UNAVAILABLE : VERSION_UNKNOWN;
  /** Derived on read from the endpoints' last VERSION; the last known value survives an outage. */
  const version = (): string => {
    lastVersion = deriveVersion(pool.endpoints, isHealthy, config.version_command) ?? lastVersion;
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

  function start(opts: InstreamOptions): InstreamScan {
    const scan = new InstreamScan(deps, opts);
    if (!scan.done) active.add(scan);
    return scan;
  }

  function startWith(signal: AbortSignal, connectAttempts: number, exclude?: ReadonlySet<string>, scanPath?: InstreamOptions['scanPath']): InstreamScan {
    return start({ signal, connectAttempts, ...(exclude !== undefined && { exclude }), ...(scanPath !== undefined && { scanPath }) });
  }

  async function settle(scan: InstreamScan): Promise<ScanAttempt> {
    return { result: await scan.end(), failure: scan.failure, tried: scan.tried, refused: scan.refused };
  }

  /** The spool can be replayed, so a failed or lost connection gets one more try elsewhere. */
  async function withReplay(signal: AbortSignal, run: (exclude?: ReadonlySet<string>) => Promise<ScanAttempt>): Promise<ScanAttempt> {
    const attempt = await run();
    if (attempt.failure !== null && !signal.aborted && pool.endpoints.some((e) => !attempt.tried.has(e.target.id))) return run(attempt.tried);
    return attempt;
  }

  async function scanSpooled(body: SpooledBody, signal: AbortSignal, exclude?: ReadonlySet<string>): Promise<ScanAttempt> {
    const stream = startWith(signal, 1, exclude);
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
    return settle(stream);
  }

  const scanBytes = (body: SpooledBody, signal: AbortSignal): Promise<ScanAttempt> => withReplay(signal, (exclude) => scanSpooled(body, signal, exclude));

  const pathTransfer =
    config.transfer === 'path'
      ? new PathTransfer({
          backend: name,
          directory: options.spoolDirectory ?? tmpdir(),
          // Nothing is sent before the command, so a failed connect may retry elsewhere at once.
          scanFile: (path, command, signal) => withReplay(signal, (exclude) => settle(startWith(signal, 1, exclude, { path, command }))),
          scanBytes,
          warn: options.warn ?? warnOnStderr,
        })
      : null;

  async function scan(body: SpooledBody, _meta: ScanMeta, signal: AbortSignal): Promise<BackendResult> {
    const started = performance.now();
    if (body.size > config.stream_max_bytes) {
      // Spec §5: size uploads against StreamMaxLength before sending and fail fast.
      return { outcome: 'error', backend: name, durationMs: 0, kind: 'too-large', message: `body of ${body.size} bytes exceeds stream_max_bytes (${config.stream_max_bytes})` };
    }
    const attempt = pathTransfer === null ? await scanBytes(body, signal) : await pathTransfer.scan(body, signal);
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
    // With transfer: path there is no stream: the transaction spools the body and calls scan().
    ...(pathTransfer === null && { openStream: (_meta: ScanMeta, signal: AbortSignal): StreamingScan => startWith(signal, 2) }),
    status: () => pool.status(),
    transferStatus: () => pathTransfer?.status ?? { mode: 'instream', scannedByPath: 0, fallbacks: 0, lastFallbackReason: null },
    close: async () => {
      for (const s of [...active]) s.abort('backend closed');
      await pool.close();
    },
  };
}
