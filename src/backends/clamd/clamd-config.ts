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
  /** Time allowed for clamd's verdict after the last byte; also bounds waiting for a free slot. */
  readonly read_timeout_ms: number;
  /** Ask VERSION (engine + signature DB version, for the ISTag); false where the admin disabled it. */
  readonly version_command: boolean;
}

export const CLAMD_DEFAULTS = {
  stream_max_bytes: 26_214_400,
  chunk_bytes: 65_536,
  connect_timeout_ms: 2_000,
  read_timeout_ms: 60_000,
  version_command: true,
} as const satisfies Omit<ClamdBackendConfig, 'endpoints' | keyof PoolSettings>;

/** The engine-specific pool defaults (src/config/pool-schema.ts poolKeys). */
export const CLAMD_POOL_DEFAULTS = {
  max_concurrency: 8,
  max_queue: 32,
  health_interval_ms: 5_000,
} as const satisfies EnginePoolDefaults;
