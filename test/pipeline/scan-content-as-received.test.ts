/**
 * scanContent on the body as received (no decoding, not multipart, no stream): the scan comes back
 * without a promise when nothing has to wait, and otherwise awaits only the backends that cannot
 * answer at once; either way the verdict cache is looked up once.
 */
import { describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta } from '../../src/backends/backend.js';
import { scanContent, type ContentScan, type ContentScanInput } from '../../src/pipeline/scan-content.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { VerdictCache } from '../../src/pipeline/verdict-cache.js';

const META: ScanMeta = { transactionId: 't-1', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const SHA = 'a'.repeat(64);

/** A backend that answers at once (`inline`) or only through scan(); counts both. */
function backend(name: string, inline: boolean): Backend & { calls: string[] } {
  const calls: string[] = [];
  const clean = (endpoint: string): BackendResult => ({ outcome: 'clean', backend: name, durationMs: 0, endpoint });
  return {
    name,
    version: '1',
    calls,
    scanNow: () => {
      calls.push('now');
      return inline ? clean('inline') : undefined;
    },
    scan: async () => {
      calls.push('scan');
      return clean('remote');
    },
    status: () => [],
    close: async () => {},
  };
}

function input(backends: Backend[], cache: VerdictCache | null): ContentScanInput {
  return {
    backends,
    body: spooledBodyFromBuffer(Buffer.from('body')),
    bodySha256: SHA,
    meta: () => META,
    signal: () => new AbortController().signal,
    streams: new Map(),
    abortStreams: () => {},
    decode: null,
    multipart: null,
    spool: { directory: '/nonexistent', memoryBytes: 1024 },
    cache: cache === null ? null : { cache, context: 'ctx' },
  };
}

const cacheOf = (): VerdictCache => new VerdictCache({ maxEntries: 10, ttlMs: 60_000, maxBytes: 1 << 20 });

describe('scanContent on the body as received', () => {
  it('answers without a promise when every backend answers at once, and stores the verdict', () => {
    const cache = cacheOf();
    const scan = scanContent(input([backend('builtin', true)], cache));
    expect(scan).not.toBeInstanceOf(Promise);
    expect((scan as ContentScan).cache).toBe('miss');
    expect((scan as ContentScan).results.map((r) => r.result.endpoint)).toEqual(['inline']);
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 1 });
    const again = scanContent(input([backend('builtin', true)], cache)) as ContentScan;
    expect(again.cache).toBe('hit');
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1 });
  });

  it('awaits only the backends that cannot answer at once, keeps the backends\' order, looks the cache up once', async () => {
    const cache = cacheOf();
    const inline = backend('builtin', true);
    const remote = backend('clamav', false);
    const scan = scanContent(input([remote, inline], cache));
    expect(scan).toBeInstanceOf(Promise);
    const done = await scan;
    expect(done.results.map((r) => `${r.result.backend}:${r.result.endpoint}`)).toEqual(['clamav:remote', 'builtin:inline']);
    expect(inline.calls).toEqual(['now']); // not scanned a second time
    expect(remote.calls.filter((c) => c === 'scan')).toHaveLength(1); // (runScans asks its scanNow again: undefined, at no cost)
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 1 });
  });

  it('scans nothing on a cache hit', () => {
    const cache = cacheOf();
    scanContent(input([backend('builtin', true)], cache));
    const b = backend('builtin', true);
    const scan = scanContent(input([b], cache)) as ContentScan;
    expect(scan.cache).toBe('hit');
    expect(b.calls).toEqual([]);
  });
});
