import { afterEach, describe, expect, it, vi } from 'vitest';
import { PerSecondResponseCache } from '../../src/server/response-cache.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('PerSecondResponseCache', () => {
  it('encodes once per key and second, again in the next second', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-11-21T10:00:00.100Z'));
    const cache = new PerSecondResponseCache();
    let encoded = 0;
    const encode = (): Buffer => Buffer.from(`answer ${++encoded} at ${new Date().toISOString()}`);
    const first = cache.get('g', 'a', encode);
    vi.setSystemTime(new Date('2026-11-21T10:00:00.900Z'));
    expect(cache.get('g', 'a', encode)).toBe(first);
    const other = cache.get('g', 'b', encode);
    expect(other).not.toBe(first);
    expect(encoded).toBe(2);
    vi.setSystemTime(new Date('2026-11-21T10:00:01.000Z'));
    const next = cache.get('g', 'a', encode);
    expect(next).not.toBe(first);
    expect(next.toString()).toContain('10:00:01.000Z');
    expect(encoded).toBe(3);
  });

  it('keeps at most 1024 answers per second; past that it encodes every time', () => {
    const cache = new PerSecondResponseCache();
    let encoded = 0;
    const encode = (): Buffer => Buffer.from(String(++encoded));
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-11-21T10:00:00.000Z'));
    for (let i = 0; i < 1100; i++) cache.get(`g${i % 7}`, `k${i}`, encode);
    cache.get('g0', 'k0', encode);
    cache.get(`g${1099 % 7}`, 'k1099', encode);
    expect(encoded).toBe(1101);
  });
});
