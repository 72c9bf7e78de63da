/**
 * Settings of a `type: icap` backend (another ICAP server as the scanner), as the config schema
 * (src/config/icap-backend-schema.ts) yields them. Declared here, structurally, so the backend
 * does not depend on the config module.
 */
import type { EnginePoolDefaults, PoolSettings } from '../pool/pool-settings.js';

export interface IcapBackendConfig extends PoolSettings {
  /** `icap://host[:port]/service[?query]` or `icaps://…`; non-empty. */
  readonly endpoints: readonly string[];
  /** The whole scan: connecting, OPTIONS when stale, sending the body, the answer. */
  readonly timeout_ms: number;
  readonly connect_timeout_ms: number;
  /** Preview size override, never above what OPTIONS advertises; absent = what OPTIONS says. */
  readonly preview_bytes?: number | undefined;
  /** 0 = no limit here; a bigger body is 'too-large' and not sent. */
  readonly max_body_bytes: number;
  /** For icaps:// endpoints. */
  readonly tls: {
    /** PEM file of the CAs to trust; '' = Node's built-in CA list. */
    readonly ca_file: string;
    readonly reject_unauthorized: boolean;
  };
}

export const ICAP_DEFAULTS = {
  timeout_ms: 60_000,
  connect_timeout_ms: 2_000,
  max_body_bytes: 0,
  tls: { ca_file: '', reject_unauthorized: true },
} as const satisfies Omit<IcapBackendConfig, 'endpoints' | 'preview_bytes' | keyof PoolSettings>;

/** The engine-specific pool defaults (src/config/pool-schema.ts poolKeys). */
export const ICAP_POOL_DEFAULTS = {
  max_concurrency: 16,
  max_queue: 64,
  health_interval_ms: 10_000,
} as const satisfies EnginePoolDefaults;
