/** A clamd backend config for unit tests against fake or real clamds: short timeouts, 1000-byte chunks, 4 slots. */
import type { ClamdBackendConfig } from '../../src/backends/clamd/clamd-backend.js';
import { CLAMD_POOL_DEFAULTS } from '../../src/backends/clamd/clamd-config.js';
import { poolSettings } from '../../src/backends/pool/pool-settings.js';

export function clamdTestConfig(endpoints: string[], overrides: Partial<ClamdBackendConfig> = {}): ClamdBackendConfig {
  return {
    ...poolSettings(CLAMD_POOL_DEFAULTS),
    endpoints,
    stream_max_bytes: 1024 * 1024,
    chunk_bytes: 1000,
    connect_timeout_ms: 300,
    read_timeout_ms: 2000,
    version_command: true,
    max_concurrency: 4,
    max_queue: 4,
    health_interval_ms: 60_000,
    ...overrides,
  };
}
