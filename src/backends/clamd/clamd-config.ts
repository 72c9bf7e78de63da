/**
 * Settings of a `type: clamd` backend, as the config schema (src/config/backend-schema.ts) yields
 * them. Declared here, structurally, so the backend does not depend on the config module.
 */
export interface ClamdBackendConfig {
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
  /** Scans at once per endpoint. */
  readonly max_concurrency: number;
  /** Scans waiting per endpoint once max_concurrency run; beyond it a scan is 'overloaded'. */
  readonly max_queue: number;
  /** PING period per endpoint. */
  readonly health_interval_ms: number;
}

export const CLAMD_DEFAULTS = {
  stream_max_bytes: 26_214_400,
  chunk_bytes: 65_536,
  connect_timeout_ms: 2_000,
  read_timeout_ms: 60_000,
  version_command: true,
  max_concurrency: 8,
  max_queue: 32,
  health_interval_ms: 5_000,
} as const satisfies Omit<ClamdBackendConfig, 'endpoints'>;
