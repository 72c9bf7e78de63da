/**
 * Verdict cache: LRU order, TTL on a fake clock, entry and byte bounds, counters, and that only
 * definite verdicts are ever stored.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BackendResult } from '../../src/backends/backend.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import {
  VerdictCache,
  cacheableVerdict,
  verdictCacheContext,
  verdictCacheKey,
  type CachedVerdict,
} from '../../src/pipeline/verdict-cache.js';

const CONTEXT = verdictCacheContext(['builtin 0.1.0 sigs=abc', 'clamd ClamAV 1.4.6/27400'], 'policy-v1');

function keyFor(content: string, context = CONTEXT): string {
  return verdictCacheKey(createHash('sha256').update(content).digest('hex'), context);
}

const CLEAN: CachedVerdict = { outcome: 'clean', backends: ['builtin'] };
const INFECTED: CachedVerdict = { outcome: 'infected', threats: ['EICAR-Test-File'], backends: ['builtin'] };

function fakeClock(start = 1000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('verdict cache keys', () => {
  it('differ by content, engine versions and policy', () => {
    const keys = new Set([
      keyFor('a'),
      keyFor('b'),
      keyFor('a', verdictCacheContext(['builtin 0.1.0 sigs=abd', 'clamd ClamAV 1.4.6/27400'], 'policy-v1')),
      keyFor('a', verdictCacheContext(['builtin 0.1.0 sigs=abc', 'clamd ClamAV 1.4.6/27400'], 'policy-v2')),
      keyFor('a', verdictCacheContext(['builtin 0.1.0 sigs=abc,clamd ClamAV 1.4.6/27400'], 'policy-v1')),
    ]);
    expect(keys.size).toBe(5);
    expect(keyFor('a')).toBe(keyFor('a'));
  });

  it('accept only a SHA-256 hex digest and ignore its case', () => {
    const hex = 'A'.repeat(64);
    expect(verdictCacheKey(hex, CONTEXT)).toBe(verdictCacheKey(hex.toLowerCase(), CONTEXT));
    expect(() => verdictCacheKey('abc', CONTEXT)).toThrow(TypeError);
  });
});

describe('cacheableVerdict', () => {
  const clean = (backend: string): BackendResult => ({ outcome: 'clean', backend, durationMs: 1 });
  const infected = (backend: string, threats: string[]): BackendResult => ({ outcome: 'infected', backend, durationMs: 1, threats });

  it('merges definite results: infected wins, threats de-duplicated, backends listed', () => {
    expect(cacheableVerdict([clean('builtin'), clean('clamd')])).toEqual({ outcome: 'clean', backends: ['builtin', 'clamd'] });
    expect(cacheableVerdict([clean('builtin'), infected('clamd', ['Eicar']), infected('md', ['Eicar', 'X'])])).toEqual({
      outcome: 'infected',
      threats: ['Eicar', 'X'],
      backends: ['builtin', 'clamd', 'md'],
    });
  });

  it('refuses errors, sanitized bodies and empty result sets', () => {
    const error: BackendResult = { outcome: 'error', backend: 'clamd', durationMs: 1, kind: 'timeout', message: 'slow' };
    const sanitized: BackendResult = {
      outcome: 'sanitized',
      backend: 'md',
      durationMs: 1,
      body: spooledBodyFromBuffer(Buffer.from('x')),
      threats: [],
      dispose: () => Promise.resolve(),
    };
    expect(cacheableVerdict([clean('builtin'), error])).toBeNull();
    expect(cacheableVerdict([infected('builtin', ['Eicar']), error])).toBeNull();
    expect(cacheableVerdict([sanitized])).toBeNull();
    expect(cacheableVerdict([])).toBeNull();
  });
});

describe('VerdictCache', () => {
  it('answers a repeated file from the cache and counts hits and misses', () => {
    const cache = new VerdictCache({ maxEntries: 10, ttlMs: 60_000, now: fakeClock().now });
    expect(cache.get(keyFor('file'))).toEqual({ hit: false });
    expect(cache.set(keyFor('file'), INFECTED)).toBe(true);
    expect(cache.get(keyFor('file'))).toEqual({ hit: true, verdict: INFECTED });
    expect(cache.get(keyFor('other'))).toEqual({ hit: false });
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 2, size: 1, evictions: 0 });
  });

  it('stores nothing for a non-definite verdict', () => {
    const cache = new VerdictCache({ maxEntries: 10, ttlMs: 60_000 });
    expect(cache.set(keyFor('x'), null)).toBe(false);
    expect(cache.set(keyFor('x'), { outcome: 'error' } as unknown as CachedVerdict)).toBe(false);
    expect(cache.stats().size).toBe(0);
  });

  it('keeps its own frozen copy of the verdict', () => {
    const cache = new VerdictCache({ maxEntries: 10, ttlMs: 60_000 });
    const threats = ['A'];
    cache.set(keyFor('x'), { outcome: 'infected', threats, backends: ['b'] });
    threats.push('B');
    const got = cache.get(keyFor('x'));
    expect(got.hit && got.verdict).toEqual({ outcome: 'infected', threats: ['A'], backends: ['b'] });
    expect(got.hit && Object.isFrozen(got.verdict)).toBe(true);
  });

  it('expires an entry exactly at its TTL, lazily, and counts it', () => {
    const clock = fakeClock();
    const cache = new VerdictCache({ maxEntries: 10, ttlMs: 1000, now: clock.now });
    cache.set(keyFor('x'), CLEAN);
    clock.advance(999);
    expect(cache.get(keyFor('x')).hit).toBe(true);
    clock.advance(1); // TTL runs from when it was stored, not from the last hit
    expect(cache.get(keyFor('x')).hit).toBe(false);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, expirations: 1, size: 0, bytes: 0 });
  });

  it('prunes expired entries at the least recently used end when storing', () => {
    const clock = fakeClock();
    const cache = new VerdictCache({ maxEntries: 10, ttlMs: 1000, now: clock.now });
    cache.set(keyFor('old-1'), CLEAN);
    cache.set(keyFor('old-2'), CLEAN);
    clock.advance(1500);
    cache.set(keyFor('new'), CLEAN);
    expect(cache.stats()).toMatchObject({ size: 1, expirations: 2, evictions: 0 });
  });

  it('evicts the least recently used entry past maxEntries; a hit refreshes recency', () => {
    const cache = new VerdictCache({ maxEntries: 3, ttlMs: 60_000, now: fakeClock().now });
    for (const name of ['a', 'b', 'c']) cache.set(keyFor(name), CLEAN);
    expect(cache.get(keyFor('a')).hit).toBe(true); // order now b, c, a
    cache.set(keyFor('d'), CLEAN); // evicts b
    expect(cache.get(keyFor('b')).hit).toBe(false);
    expect(cache.get(keyFor('c')).hit).toBe(true);
    expect(cache.get(keyFor('a')).hit).toBe(true);
    expect(cache.get(keyFor('d')).hit).toBe(true);
    expect(cache.stats()).toMatchObject({ size: 3, evictions: 1 });
  });

  it('replaces an entry for the same key without growing or evicting', () => {
    const cache = new VerdictCache({ maxEntries: 2, ttlMs: 60_000, now: fakeClock().now });
    cache.set(keyFor('a'), CLEAN);
    cache.set(keyFor('b'), CLEAN);
    cache.set(keyFor('a'), INFECTED);
    expect(cache.stats()).toMatchObject({ size: 2, evictions: 0 });
    const got = cache.get(keyFor('a'));
    expect(got.hit && got.verdict.outcome).toBe('infected');
  });

  it('keeps the estimated bytes under maxBytes, refusing an entry too big on its own', () => {
    const cache = new VerdictCache({ maxEntries: 1000, ttlMs: 60_000, maxBytes: 2000, now: fakeClock().now });
    for (let i = 0; i < 20; i++) cache.set(keyFor(`f${i}`), CLEAN);
    const stats = cache.stats();
    expect(stats.bytes).toBeLessThanOrEqual(2000);
    expect(stats.size).toBeGreaterThan(0);
    expect(stats.size).toBeLessThan(20);
    expect(stats.evictions).toBe(20 - stats.size);
    const huge: CachedVerdict = { outcome: 'infected', threats: ['T'.repeat(5000)], backends: ['b'] };
    expect(cache.set(keyFor('huge'), huge)).toBe(false);
    expect(cache.stats().size).toBe(stats.size);
  });

  it('deletes and clears, keeping the counters', () => {
    const cache = new VerdictCache({ maxEntries: 10, ttlMs: 60_000 });
    cache.set(keyFor('a'), CLEAN);
    cache.set(keyFor('b'), CLEAN);
    cache.get(keyFor('a'));
    expect(cache.delete(keyFor('a'))).toBe(true);
    expect(cache.delete(keyFor('a'))).toBe(false);
    cache.clear();
    expect(cache.stats()).toEqual({ hits: 1, misses: 0, evictions: 0, expirations: 0, size: 0, bytes: 0 });
  });

  it('rejects nonsensical bounds', () => {
    expect(() => new VerdictCache({ maxEntries: 0, ttlMs: 1 })).toThrow(RangeError);
    expect(() => new VerdictCache({ maxEntries: 1, ttlMs: 0 })).toThrow(RangeError);
    expect(() => new VerdictCache({ maxEntries: 1, ttlMs: 1, maxBytes: 0 })).toThrow(RangeError);
  });
});
