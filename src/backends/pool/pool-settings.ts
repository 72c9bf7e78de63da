/**
 * The pool keys of a backend's config (src/config/pool-schema.ts), declared structurally so
 * backends do not depend on the config module, and their defaults, which the schema uses too.
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

/** The three keys whose defaults differ per engine type. */
export type EnginePoolDefaults = Pick<PoolSettings, 'max_concurrency' | 'max_queue' | 'health_interval_ms'>;

/** Defaults shared by every engine type. */
export const SHARED_POOL_DEFAULTS = {
  balance: 'round-robin',
  weights: {},
  eject_after: 3,
  cooldown_ms: 10_000,
  health_timeout_ms: 2_000,
  dns: { enabled: false, server: '', min_ttl_ms: 1_000, max_ttl_ms: 300_000 },
} as const satisfies Omit<PoolSettings, keyof EnginePoolDefaults>;

/** Complete settings from an engine's defaults and some overrides (programmatic callers, tests). */
export function poolSettings(engine: EnginePoolDefaults, overrides: Partial<PoolSettings> = {}): PoolSettings {
  return { ...SHARED_POOL_DEFAULTS, ...engine, ...overrides };
}
