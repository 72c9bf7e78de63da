/**
 * The pool keys of a backend's config (src/config/pool-schema.ts), declared structurally so
 * backends do not depend on the config module.
 */
import type { BalanceStrategy } from './endpoint-pool.js';

export interface PoolSettings {
  readonly balance: BalanceStrategy;
  /** Endpoint text as written in `endpoints` → weight (default 1). */
  readonly weights: Readonly<Record<string, number>>;
  readonly max_concurrency: number;
  readonly max_queue: number;
  readonly eject_after: number;
  readonly cooldown_ms: number;
  readonly health_interval_ms: number;
  readonly health_timeout_ms: number;
  readonly dns: {
    readonly enabled: boolean;
    /** '' = the system resolver. */
    readonly server: string;
    readonly min_ttl_ms: number;
    readonly max_ttl_ms: number;
  };
}
