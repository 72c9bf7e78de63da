/**
 * Settings of a `type: clamd` backend, as the config schema (src/config/backend-schema.ts) yields
 * them. Declared here, structurally, so the backend does not depend on the config module.
 */
import type { EnginePoolDefaults, PoolSettings } from '../pool/pool-settings.js';

/**
 * The pool keys (balance, weights, max_concurrency, max_queue, eject_after, cooldown_ms,
 * health_interval_ms, health_timeout_ms, dns) come from PoolSettings. For clamd:
 *  - max_concurrency: INSTREAM scans at once per endpoint;
 *  - max_queue: scans waiting for a free slot across the whole pool (before the generic pool it
 *    was per endpoint), each for at most read_timeout_ms; beyond either, 'overloaded';
 *  - health_interval_ms: the PING (+ VERSION) period.
 */
export interface ClamdBackendConfig extends PoolSettings {
  /** `host:port`, `[v6]:port` or an absolute UNIX socket path; non-empty. */
  readonly endpoints: readonly string[];
  /** clamd's StreamMaxLength: a body over it is a 'too-large' outcome, never sent past the budget. */
  readonly stream_max_bytes: number;
  /** INSTREAM chunk size. */
  readonly chunk_bytes: number;
  /** Also bounds "accepted but silent" (clamd's queue full) detection and the health PING. */
  readonly connect_timeout_ms: number;
  /** Time allowed for clamd's verdict after the last byte, and for clamd to read more of a stream that waits on it; also bounds waiting for a free slot. */
  readonly read_timeout_ms: number;
  /** Ask VERSION (engine + signature DB version, for the ISTag); false where the admin disabled it. */
  readonly version_command: boolean;
  /**
   * How the body reaches clamd (absent = 'instream'):
   *  - 'instream': the bytes go over the socket (zINSTREAM), streamed while the body arrives;
   *    works with any clamd, local or remote;
   *  - 'path': the body is spooled whole, then clamd is told to read the file itself
   *    (zSCAN <absolute path>), as clamdscan does. clamd must run on the same host (same
   *    filesystem view) and be able to read files in `spool.directory`: run it as the bridge's
   *    user, or give it a group the files belong to (a setgid spool directory owned by clamd's
   *    group; the bridge's own per-scan files are created 0640). A body clamd cannot read
   *    (permission denied, no such path, excluded) is sent by INSTREAM instead, with one warning.
   */
  readonly transfer?: ClamdTransfer;
}

export const CLAMD_TRANSFERS = ['instream', 'path'] as const;
export type ClamdTransfer = (typeof CLAMD_TRANSFERS)[number];

export const CLAMD_DEFAULTS = {
  stream_max_bytes: 26_214_400,
  chunk_bytes: 65_536,
  connect_timeout_ms: 2_000,
  read_timeout_ms: 60_000,
  version_command: true,
  transfer: 'instream',
} as const satisfies Omit<ClamdBackendConfig, 'endpoints' | keyof PoolSettings>;

/** The engine-specific pool defaults (src/config/pool-schema.ts poolKeys). */
export const CLAMD_POOL_DEFAULTS = {
  max_concurrency: 8,
  max_queue: 32,
  health_interval_ms: 5_000,
} as const satisfies EnginePoolDefaults;
