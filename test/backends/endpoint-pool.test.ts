/** The endpoint pool: balancing, limits and queue, ejection and return, failover. */
import { describe, expect, it } from 'vitest';
import { EndpointPool, PoolUnavailableError, type EndpointHealthChange, type PoolOptions } from '../../src/backends/pool/endpoint-pool.js';
import { withFailover } from '../../src/backends/pool/failover.js';

const base: PoolOptions = { strategy: 'round-robin', maxConcurrency: 2, maxQueue: 2, ejectAfter: 2, cooldownMs: 100 };
const eps = (...ids: string[]) => ids.map((id) => ({ id }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function picks(pool: EndpointPool, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const l = await pool.acquire();
    out.push(l.endpoint);
    l.release('ok');
  }
  return out;
}

describe('balancing', () => {
  it('round-robin cycles', async () => {
    expect(await picks(new EndpointPool(eps('a', 'b', 'c'), base), 6)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('weighted spreads by weight, evenly', async () => {
    const pool = new EndpointPool([{ id: 'a', weight: 3 }, { id: 'b', weight: 1 }], { ...base, strategy: 'weighted' });
    const got = await picks(pool, 8);
    expect(got.filter((x) => x === 'a')).toHaveLength(6);
    expect(got.slice(0, 4).filter((x) => x === 'b')).toHaveLength(1);
  });

  it('least-outstanding picks the idlest', async () => {
    const pool = new EndpointPool(eps('a', 'b'), { ...base, strategy: 'least-outstanding', maxConcurrency: 5 });
    const l1 = await pool.acquire();
    const l2 = await pool.acquire();
    const l3 = await pool.acquire();
    expect([l1.endpoint, l2.endpoint].sort()).toEqual(['a', 'b']);
    l1.release('ok');
    expect((await pool.acquire()).endpoint).toBe(l1.endpoint);
    l2.release('ok');
    l3.release('ok');
  });
});

describe('limits', () => {
  it('queues past the per-endpoint limit, then refuses as overloaded past the queue', async () => {
    const pool = new EndpointPool(eps('a'), { ...base, maxConcurrency: 1, maxQueue: 1 });
    const first = await pool.acquire();
    const waiting = pool.acquire();
    await expect(pool.acquire()).rejects.toMatchObject({ kind: 'overloaded' });
    expect(pool.status()[0]).toMatchObject({ inFlight: 1, queued: 1 });
    first.release('ok');
    const second = await waiting;
    expect(second.endpoint).toBe('a');
    second.release('ok');
  });

  it('a waiter gives up as overloaded after queueTimeoutMs, and leaves the queue', async () => {
    const pool = new EndpointPool(eps('a'), { ...base, maxConcurrency: 1, maxQueue: 1, queueTimeoutMs: 50 });
    const held = await pool.acquire();
    await expect(pool.acquire()).rejects.toMatchObject({ kind: 'overloaded', message: expect.stringContaining('within 50 ms') });
    expect(pool.status()[0]).toMatchObject({ inFlight: 1, queued: 0 });
    // The queue has room again, and a slot freed in time is handed over.
    const waiting = pool.acquire();
    held.release('ok');
    const next = await waiting;
    expect(next.endpoint).toBe('a');
    next.release('ok');
  });

  it('without queueTimeoutMs a waiter waits until a slot frees', async () => {
    const pool = new EndpointPool(eps('a'), { ...base, maxConcurrency: 1 });
    const held = await pool.acquire();
    let granted = false;
    const waiting = pool.acquire().then((l) => ((granted = true), l));
    await sleep(80);
    expect(granted).toBe(false);
    held.release('ok');
    (await waiting).release('ok');
  });

  it('a waiter can be aborted', async () => {
    const pool = new EndpointPool(eps('a'), { ...base, maxConcurrency: 1 });
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire({ signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ kind: 'aborted' });
    held.release('ok');
  });
});

describe('health', () => {
  it('ejects after consecutive failures and returns after the cool-down (no active check)', async () => {
    const pool = new EndpointPool(eps('a', 'b'), base);
    for (let i = 0; i < 2; i++) (await pool.acquire({ exclude: new Set(['b']) })).release('failure');
    expect(pool.status().find((s) => s.endpoint === 'a')?.healthy).toBe(false);
    expect(await picks(pool, 3)).toEqual(['b', 'b', 'b']);
    await sleep(120);
    expect(pool.status().find((s) => s.endpoint === 'a')?.healthy).toBe(true);
  });

  it('with an active check, an ejected endpoint comes back only when the check passes', async () => {
    let aUp = false;
    const pool = new EndpointPool(eps('a', 'b'), { ...base, cooldownMs: 0, check: async (id) => id !== 'a' || aUp });
    await pool.checkNow();
    expect(await picks(pool, 2)).toEqual(['b', 'b']);
    aUp = true;
    await pool.checkNow();
    expect((await picks(pool, 2)).sort()).toEqual(['a', 'b']);
  });

  it('no usable endpoint → unreachable; not ready', async () => {
    const pool = new EndpointPool(eps('a'), { ...base, check: async () => false });
    await pool.checkNow();
    expect(pool.ready).toBe(false);
    await expect(pool.acquire()).rejects.toBeInstanceOf(PoolUnavailableError);
    await expect(pool.acquire()).rejects.toMatchObject({ kind: 'unreachable' });
  });

  it("'down' ejects at once; 'neutral' never counts; 'ok' clears the count", async () => {
    const pool = new EndpointPool(eps('a', 'b'), { ...base, ejectAfter: 3, cooldownMs: 10_000 });
    const onA = () => pool.acquire({ exclude: new Set(['b']) });
    (await onA()).release('failure');
    (await onA()).release('neutral');
    (await onA()).release('ok');
    (await onA()).release('failure');
    (await onA()).release('failure');
    expect(pool.isHealthy('a')).toBe(true);
    (await onA()).release('down');
    expect(pool.isHealthy('a')).toBe(false);
    expect(await picks(pool, 2)).toEqual(['b', 'b']);
  });

  it('fallbackToUnhealthy: with none healthy, the unhealthy ones are still tried (exclude honoured)', async () => {
    const pool = new EndpointPool(eps('a', 'b'), { ...base, fallbackToUnhealthy: true, check: async () => false });
    await pool.checkNow();
    expect(pool.ready).toBe(false);
    const first = await pool.acquire();
    const second = await pool.acquire({ exclude: new Set([first.endpoint]) });
    expect([first.endpoint, second.endpoint].sort()).toEqual(['a', 'b']);
    await expect(pool.acquire({ exclude: new Set(['a', 'b']) })).rejects.toMatchObject({ kind: 'unreachable' });
    // An answer proves it alive, even before a check passes.
    first.release('ok');
    second.release('failure');
    expect(pool.isHealthy(first.endpoint)).toBe(true);
  });

  it('hysteresis: checksToDown / checksToUp in a row, but the first check decides at once', async () => {
    let up = true;
    const pool = new EndpointPool(eps('a'), { ...base, cooldownMs: 0, checksToDown: 2, checksToUp: 2, check: async () => up });
    up = false;
    await pool.checkNow();
    expect(pool.isHealthy('a')).toBe(false); // first check
    up = true;
    await pool.checkNow();
    expect(pool.isHealthy('a')).toBe(false);
    await pool.checkNow();
    expect(pool.isHealthy('a')).toBe(true);
    up = false;
    await pool.checkNow();
    expect(pool.isHealthy('a')).toBe(true);
    await pool.checkNow();
    expect(pool.isHealthy('a')).toBe(false);
  });

  it('an ejected endpoint stays out for the cool-down even when its check passes', async () => {
    const pool = new EndpointPool(eps('a', 'b'), { ...base, cooldownMs: 150, check: async () => true });
    (await pool.acquire({ exclude: new Set(['b']) })).release('down');
    await pool.checkNow();
    expect(pool.isHealthy('a')).toBe(false);
    await sleep(170);
    await pool.checkNow();
    expect(pool.isHealthy('a')).toBe(true);
  });

  it('checks: concurrent requests join one run; a check that ignores its signal is cut at checkTimeoutMs', async () => {
    let calls = 0;
    let release: () => void = () => {};
    const pool = new EndpointPool(eps('a'), {
      ...base,
      checkTimeoutMs: 50,
      check: (_id, signal) => {
        calls++;
        // Never settles by itself: only the pool's timeout ends it.
        return new Promise<boolean>((resolve) => {
          release = () => resolve(true);
          void signal;
        });
      },
    });
    await Promise.all([pool.checkNow(), pool.checkOne('a'), pool.checkOne('a')]);
    expect(calls).toBe(1);
    expect(pool.isHealthy('a')).toBe(false);
    release();
  });

  it('setEndpoints keeps the state of endpoints that stay', async () => {
    const pool = new EndpointPool(eps('a', 'b'), base);
    for (let i = 0; i < 2; i++) (await pool.acquire({ exclude: new Set(['b']) })).release('failure');
    pool.setEndpoints(eps('a', 'c'));
    expect(pool.status().map((s) => [s.endpoint, s.healthy])).toEqual([['a', false], ['c', true]]);
  });
});

describe('health changes are reported once each, with why', () => {
  const recorder = () => {
    const changes: EndpointHealthChange[] = [];
    return { changes, onHealthChange: (c: EndpointHealthChange) => void changes.push(c) };
  };

  it('passive: the release that ejects reports down with its failure; repeats on probation say nothing; an answer reports up', async () => {
    const { changes, onHealthChange } = recorder();
    const pool = new EndpointPool(eps('a', 'b'), { ...base, cooldownMs: 30, onHealthChange });
    const onA = () => pool.acquire({ exclude: new Set(['b']) });
    (await onA()).release('failure', 'first');
    expect(changes).toEqual([]);
    (await onA()).release('failure', 'cannot connect to a: ECONNREFUSED');
    expect(changes).toEqual([{ endpoint: 'a', healthy: false, reason: '2 failures in a row, the last: cannot connect to a: ECONNREFUSED' }]);
    await sleep(40); // on probation after the cool-down: still unhealthy, and a new failure is no news
    (await onA()).release('down', 'refused again');
    expect(changes).toHaveLength(1);
    await sleep(40);
    (await onA()).release('ok');
    expect(changes.slice(1)).toEqual([{ endpoint: 'a', healthy: true, reason: 'answered a scan' }]);
    (await onA()).release('ok');
    expect(changes).toHaveLength(2);
  });

  it("passive: 'down' without a detail, and a detail too long for a log line", async () => {
    const { changes, onHealthChange } = recorder();
    const pool = new EndpointPool(eps('a', 'b'), { ...base, ejectAfter: 1, onHealthChange });
    (await pool.acquire({ exclude: new Set(['b']) })).release('down');
    (await pool.acquire({ exclude: new Set(['a']) })).release('failure', 'x'.repeat(1000));
    expect(changes.map((c) => [c.endpoint, c.healthy, c.reason.length])).toEqual([
      ['a', false, 'refused or not answering'.length],
      ['b', false, 301],
    ]);
    expect(changes[1]!.reason.endsWith('x…')).toBe(true);
  });

  it('active: the first failed check reports down, later ones nothing; a timeout says so; the passing check reports up', async () => {
    const { changes, onHealthChange } = recorder();
    let mode: 'up' | 'down' | 'hang' = 'down';
    const pool = new EndpointPool(eps('a'), {
      ...base,
      cooldownMs: 0,
      checkTimeoutMs: 30,
      onHealthChange,
      // 'hang' never settles: only the pool's checkTimeoutMs ends it.
      check: () => (mode === 'hang' ? new Promise<boolean>(() => {}) : Promise.resolve(mode === 'up')),
    });
    await pool.checkNow();
    await pool.checkNow();
    expect(changes).toEqual([{ endpoint: 'a', healthy: false, reason: 'health check failed' }]);
    mode = 'up';
    await pool.checkNow();
    mode = 'hang';
    await pool.checkNow();
    expect(changes.slice(1)).toEqual([
      { endpoint: 'a', healthy: true, reason: 'health check passed' },
      { endpoint: 'a', healthy: false, reason: 'health check timed out after 30 ms' },
    ]);
  });

  it('active with hysteresis: the reason counts the checks in a row', async () => {
    const { changes, onHealthChange } = recorder();
    let up = true;
    const pool = new EndpointPool(eps('a'), { ...base, cooldownMs: 0, checksToDown: 3, checksToUp: 2, onHealthChange, check: async () => up });
    await pool.checkNow(); // the first check decides at once: up, which it already was
    up = false;
    for (let i = 0; i < 3; i++) await pool.checkNow();
    up = true;
    for (let i = 0; i < 2; i++) await pool.checkNow();
    expect(changes.map((c) => `${c.healthy} ${c.reason}`)).toEqual(['false health check failed (3 in a row)', 'true 2 health checks passed in a row']);
  });

  it('withFailover hands the attempt\'s detail, or the thrown error, to the pool', async () => {
    const { changes, onHealthChange } = recorder();
    const pool = new EndpointPool(eps('a', 'b'), { ...base, ejectAfter: 1, onHealthChange });
    await withFailover(pool, undefined, async (lease) =>
      // The endpoint's name in front of the text is dropped: the report names it already.
      lease.endpoint === 'a' ? { value: 1, outcome: 'failure', retry: true, detail: 'a: upstream answered 500' } : { value: 2, outcome: 'ok', retry: false },
    );
    await expect(withFailover(pool, undefined, async () => Promise.reject(new Error('bug in the attempt')))).rejects.toThrow('bug');
    expect(changes).toEqual([
      { endpoint: 'a', healthy: false, reason: 'upstream answered 500' },
      { endpoint: 'b', healthy: false, reason: 'bug in the attempt' },
    ]);
  });

  it('a report that throws changes nothing; a closed pool reports nothing', async () => {
    const pool = new EndpointPool(eps('a', 'b'), {
      ...base,
      ejectAfter: 1,
      onHealthChange: () => {
        throw new Error('log stream closed');
      },
    });
    (await pool.acquire({ exclude: new Set(['b']) })).release('failure', 'x');
    expect(pool.isHealthy('a')).toBe(false);
    const { changes, onHealthChange } = recorder();
    const closing = new EndpointPool(eps('a'), { ...base, ejectAfter: 1, onHealthChange });
    const lease = await closing.acquire();
    closing.close();
    lease.release('failure', 'during shutdown');
    expect(changes).toEqual([]);
  });
});

describe('withFailover', () => {
  it('retries once on another endpoint after a retryable failure', async () => {
    const pool = new EndpointPool(eps('a', 'b'), base);
    const seen: string[] = [];
    const value = await withFailover(pool, undefined, async (lease) => {
      seen.push(lease.endpoint);
      return lease.endpoint === 'a' ? { value: 'err', outcome: 'failure', retry: true } : { value: 'ok', outcome: 'ok', retry: false };
    });
    expect(seen).toEqual(['a', 'b']);
    expect(value).toBe('ok');
  });

  it('does not retry a failure that may not be retried, nor more than once', async () => {
    const pool = new EndpointPool(eps('a', 'b', 'c'), base);
    let n = 0;
    expect(await withFailover(pool, undefined, async () => ({ value: ++n, outcome: 'failure', retry: false }))).toBe(1);
    n = 0;
    expect(await withFailover(pool, undefined, async () => ({ value: ++n, outcome: 'failure', retry: true }))).toBe(2);
  });

  it('keeps the first answer when no other endpoint is left', async () => {
    const pool = new EndpointPool(eps('a'), base);
    expect(await withFailover(pool, undefined, async () => ({ value: 'first', outcome: 'failure', retry: true }))).toBe('first');
  });
});
