/**
 * A MetaDefender adapter for in-process tests against the emulator: fast polls, no health rounds,
 * a spool that keeps 1 KiB in memory, and a scan bounded in time so a hang fails the test instead
 * of stalling it.
 */
import type { Backend, BackendResult, ScanMeta } from '../../src/backends/backend.js';
import { createMetaDefenderBackend, type MetaDefenderBackendOptions } from '../../src/backends/metadefender/metadefender-backend.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';

/** The adapter on `endpoints` with test defaults; `overrides` win. */
export function createTestMetaDefender(
  endpoints: readonly string[],
  spoolDirectory: string,
  timeoutMs: number,
  overrides: Partial<MetaDefenderBackendOptions> = {},
): Promise<Backend> {
  return createMetaDefenderBackend({
    name: 'md',
    endpoints: [...endpoints],
    apikey: '',
    rule: '',
    timeoutMs,
    pollInitialMs: 5,
    pollMaxMs: 20,
    hashLookup: false,
    sanitize: false,
    maxFileBytes: 0,
    spool: { memoryBytes: 1024, directory: spoolDirectory },
    pool: { health_interval_ms: 0 },
    ...overrides,
  });
}

/** The scan's result and how long it took; 'still pending' after `limitMs`. A sanitized copy is freed. */
export async function timedScan(b: Backend, body: Buffer, meta: ScanMeta, limitMs: number): Promise<{ result: BackendResult | 'still pending'; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'still pending'>((resolve) => (timer = setTimeout(() => resolve('still pending'), limitMs)));
  const result = await Promise.race([b.scan(spooledBodyFromBuffer(body), meta, new AbortController().signal), limit]);
  clearTimeout(timer);
  if (typeof result !== 'string' && result.outcome === 'sanitized') await result.dispose();
  return { result, ms: performance.now() - started };
}
