/**
 * Defaults of a `type: metadefender` backend that the config schema shares with the backend.
 * Declared here so the config module does not load the adapter (undici and all).
 */
import type { EnginePoolDefaults } from '../pool/pool-settings.js';

/**
 * A lease is held for a job's whole life (upload, polls, sanitized download), so
 * max_concurrency is jobs open at once per Core server. Core queues work itself (its own
 * queue answers 503 when full), so the limit is generous.
 */
export const METADEFENDER_POOL_DEFAULTS = {
  max_concurrency: 64,
  max_queue: 256,
  health_interval_ms: 5_000,
} as const satisfies EnginePoolDefaults;
