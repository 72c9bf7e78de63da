/**
 * `endpoints` + pool keys → a live pool: static entries, DNS names expanded to one pinned
 * endpoint per record (re-resolved by TTL), weights by configured entry, resources opened per
 * endpoint and disposed only once the endpoint is gone and no lease holds it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolSettings, type PoolSettings } from '../../src/backends/pool/pool-settings.js';
import { PooledEndpoints, type HostPort, type PoolTarget } from '../../src/backends/pool/pooled-endpoints.js';
import { startTestDns, type TestDns } from '../helpers/dns-server.js';

let dns: TestDns;
beforeAll(async () => {
  dns = await startTestDns();
});
afterAll(() => dns.close());

/** host:port, [v6]:port, or a socket path (null), like clamd's endpoint text. */
function locate(text: string): HostPort | null {
  if (text.startsWith('/')) return null;
  const colon = text.lastIndexOf(':');
  return { host: text.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(text.slice(colon + 1)) };
}

interface Resource {
  readonly target: PoolTarget;
  disposed: boolean;
}

function settings(overrides: Partial<PoolSettings> = {}): PoolSettings {
  return poolSettings({ max_concurrency: 4, max_queue: 4, health_interval_ms: 60_000 }, overrides);
}

async function make(endpoints: string[], overrides: Partial<PoolSettings> = {}) {
  const opened: Resource[] = [];
  const pool = await PooledEndpoints.create<Resource>({
    endpoints,
    settings: settings(overrides),
    locate,
    open: (target) => {
      const r = { target, disposed: false };
      opened.push(r);
      return r;
    },
    dispose: (r) => {
      r.disposed = true;
    },
  });
  return { pool, opened };
}

const waitFor = async (what: string, condition: () => boolean): Promise<void> => {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('PooledEndpoints', () => {
  it('without DNS mode: one endpoint per entry, named as written', async () => {
    const { pool } = await make(['10.0.0.1:3310', '[::1]:3310', '/run/clamd.ctl', 'clamd.test:3310']);
    expect(pool.endpoints.map((e) => e.target)).toEqual([
      { id: '10.0.0.1:3310', configured: '10.0.0.1:3310', hostName: '10.0.0.1', address: '10.0.0.1', port: 3310, pinned: false },
      { id: '[::1]:3310', configured: '[::1]:3310', hostName: '::1', address: '::1', port: 3310, pinned: false },
      { id: '/run/clamd.ctl', configured: '/run/clamd.ctl', hostName: '', address: '', port: 0, pinned: false },
      { id: 'clamd.test:3310', configured: 'clamd.test:3310', hostName: 'clamd.test', address: 'clamd.test', port: 3310, pinned: false },
    ]);
    expect(dns.queries.filter((q) => q.startsWith('clamd.test'))).toEqual([]);
    await pool.close();
  });

  it('DNS mode: a name becomes one pinned endpoint per record; IP literals and sockets stay as written; weights follow the entry', async () => {
    dns.set('multi.test', ['127.0.0.2', '127.0.0.3'], 60);
    const { pool } = await make(['multi.test:3310', '127.0.0.9:3310', '/run/clamd.ctl'], {
      dns: { enabled: true, server: dns.server, min_ttl_ms: 100, max_ttl_ms: 60_000 },
      balance: 'weighted',
      weights: { 'multi.test:3310': 2 },
    });
    expect(pool.endpoints.map((e) => e.target)).toEqual([
      { id: 'multi.test:3310 (127.0.0.2)', configured: 'multi.test:3310', hostName: 'multi.test', address: '127.0.0.2', port: 3310, pinned: true },
      { id: 'multi.test:3310 (127.0.0.3)', configured: 'multi.test:3310', hostName: 'multi.test', address: '127.0.0.3', port: 3310, pinned: true },
      { id: '127.0.0.9:3310', configured: '127.0.0.9:3310', hostName: '127.0.0.9', address: '127.0.0.9', port: 3310, pinned: false },
      { id: '/run/clamd.ctl', configured: '/run/clamd.ctl', hostName: '', address: '', port: 0, pinned: false },
    ]);
    // Weights 2, 2, 1, 1: over 12 picks, each record twice as often as each static entry.
    const counts = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const lease = await pool.acquire();
      counts.set(lease.endpoint, (counts.get(lease.endpoint) ?? 0) + 1);
      lease.release('ok');
    }
    expect([...counts.values()].sort()).toEqual([2, 2, 4, 4]);
    expect(counts.get('multi.test:3310 (127.0.0.2)')).toBe(4);
    await pool.close();
  });

  it('follows DNS changes; a removed endpoint is disposed only after its last lease, a kept one keeps its resource', async () => {
    dns.set('moving.test', ['127.0.0.2', '127.0.0.3'], 0);
    const { pool, opened } = await make(['moving.test:8008'], { dns: { enabled: true, server: dns.server, min_ttl_ms: 100, max_ttl_ms: 1000 } });
    const kept = pool.get('moving.test:8008 (127.0.0.3)')!.resource;
    const lease = await pool.acquire({ exclude: new Set(['moving.test:8008 (127.0.0.3)']) });
    expect(lease.target.address).toBe('127.0.0.2');

    dns.set('moving.test', ['127.0.0.3', '127.0.0.4'], 0);
    await waitFor('the new record set', () => pool.endpoints.map((e) => e.target.address).join() === '127.0.0.3,127.0.0.4');
    expect(pool.get('moving.test:8008 (127.0.0.3)')!.resource).toBe(kept);
    // The job pinned to .2 still holds it: not disposed yet.
    expect(lease.resource.disposed).toBe(false);
    lease.release('ok');
    await waitFor('disposal after the last lease', () => lease.resource.disposed);
    expect(kept.disposed).toBe(false);
    expect(opened.map((r) => r.target.address)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    await pool.close();
    expect(opened.every((r) => r.disposed)).toBe(true);
  });

  it('a name that does not resolve stays one endpoint by name, until DNS answers', async () => {
    const { pool } = await make(['later.test:3310'], { dns: { enabled: true, server: dns.server, min_ttl_ms: 100, max_ttl_ms: 1000 } });
    expect(pool.endpoints.map((e) => e.target)).toEqual([
      { id: 'later.test:3310', configured: 'later.test:3310', hostName: 'later.test', address: 'later.test', port: 3310, pinned: false },
    ]);
    dns.set('later.test', ['127.0.0.5'], 0);
    await waitFor('the record', () => pool.endpoints.map((e) => e.target.id).join() === 'later.test:3310 (127.0.0.5)');
    await pool.close();
  });

  it('the active check gets the target and resource; after close() acquire fails', async () => {
    const checked: string[] = [];
    const pool = await PooledEndpoints.create<string>({
      endpoints: ['127.0.0.1:1', '127.0.0.1:2'],
      settings: settings(),
      locate,
      open: (t) => `resource of ${t.id}`,
      check: async ({ target, resource }) => {
        checked.push(resource);
        return target.port === 2;
      },
    });
    await pool.checkNow();
    expect(checked.sort()).toEqual(['resource of 127.0.0.1:1', 'resource of 127.0.0.1:2']);
    expect(pool.status().map((s) => [s.endpoint, s.healthy])).toEqual([['127.0.0.1:1', false], ['127.0.0.1:2', true]]);
    await pool.close();
    await expect(pool.acquire()).rejects.toMatchObject({ kind: 'unreachable' });
  });
});
