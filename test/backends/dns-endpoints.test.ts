/** DNS mode: the records of a name become endpoints, re-resolved after their TTL. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsEndpointSource, endpointId } from '../../src/backends/pool/dns-endpoints.js';
import { EndpointPool } from '../../src/backends/pool/endpoint-pool.js';
import { startTestDns, type TestDns } from '../helpers/dns-server.js';

let dns: TestDns;
beforeAll(async () => {
  dns = await startTestDns();
});
afterAll(() => dns.close());

describe('DnsEndpointSource', () => {
  it('turns every A record into an endpoint and follows changes after the TTL', async () => {
    dns.set('core.test', ['127.0.0.2', '127.0.0.3', '127.0.0.4'], 1);
    const pool = new EndpointPool([], { strategy: 'round-robin', maxConcurrency: 4, maxQueue: 4, ejectAfter: 2, cooldownMs: 1000 });
    const source = new DnsEndpointSource({ name: 'core.test', port: 8008, server: dns.server, minTtlMs: 200 }, (e) => pool.setEndpoints(e));
    await source.refresh();
    expect(pool.endpoints).toEqual(['127.0.0.2:8008', '127.0.0.3:8008', '127.0.0.4:8008']);

    dns.set('core.test', ['127.0.0.3', '127.0.0.5'], 1);
    const deadline = Date.now() + 3000;
    while (pool.endpoints.join() !== '127.0.0.3:8008,127.0.0.5:8008' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(pool.endpoints).toEqual(['127.0.0.3:8008', '127.0.0.5:8008']);
    source.close();
    pool.close();
  });

  it('keeps the last good set when the name stops resolving', async () => {
    dns.set('keep.test', ['127.0.0.7'], 1);
    const source = new DnsEndpointSource({ name: 'keep.test', port: 3310, server: dns.server, minTtlMs: 100 }, () => {});
    await source.refresh();
    dns.set('keep.test', [], 1);
    await source.refresh();
    expect(source.endpoints.map((e) => e.id)).toEqual(['127.0.0.7:3310']);
    source.close();
  });

  it('writes IPv6 endpoints with brackets', () => {
    expect(endpointId('::1', 1344)).toBe('[::1]:1344');
    expect(endpointId('127.0.0.1', 1344)).toBe('127.0.0.1:1344');
  });
});
