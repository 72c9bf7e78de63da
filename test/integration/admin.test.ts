/** The admin listener: /metrics counts what happened, /healthz and /readyz answer. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest, EICAR } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { metricValue } from '../helpers/metrics-text.js';

let srv: ChildServer;
let adminPort: number;
beforeAll(async () => {
  srv = await startChildServer('admin:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n');
  const line = srv.logs().find((l) => l.msg === 'admin listening');
  adminPort = line!.port as number;
});
afterAll(async () => {
  await srv?.stop();
});

const get = async (path: string): Promise<{ status: number; text: string }> => {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`);
  return { status: res.status, text: await res.text() };
};

describe('admin listener', () => {
  it('/healthz and /readyz answer 200', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, text: 'ok\n' });
    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ ready: true, problems: {} });
  });

  it('/metrics counts transactions by method, service, status and verdict after traffic', async () => {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    await c.read();
    // Three different bodies: a repeated one would be answered by the verdict cache, unscanned.
    for (let i = 0; i < 3; i++) {
      c.write(buildRequest({ body: [`clean data ${i}`], headers: [['Allow', '204']] }).first);
      expect((await c.read()).status).toBe(204);
    }
    c.write(buildRequest({ body: [EICAR] }).first);
    expect((await c.read()).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    const { status, text } = await get('/metrics');
    expect(status).toBe(200);
    expect(metricValue(text, 'icap_bridge_transactions_total', { method: 'RESPMOD', service: 'respmod', status: '204', verdict: 'clean' })).toBe(3);
    expect(metricValue(text, 'icap_bridge_transactions_total', { method: 'RESPMOD', service: 'respmod', status: '200', verdict: 'infected' })).toBe(1);
    expect(metricValue(text, 'icap_bridge_transactions_total', { method: 'OPTIONS', service: 'respmod' })).toBe(1);
    expect(metricValue(text, 'icap_bridge_transaction_duration_seconds_count', { method: 'RESPMOD', service: 'respmod' })).toBe(4);
    expect(metricValue(text, 'icap_bridge_bytes_in_total', { service: 'respmod' })).toBeGreaterThan(0);
    expect(metricValue(text, 'icap_bridge_connections_open')).toBe(1);
    expect(metricValue(text, 'icap_bridge_backend_endpoint_up', { backend: 'builtin', endpoint: 'worker-pool' })).toBe(1);
    expect(metricValue(text, 'icap_bridge_backend_endpoint_queued', { backend: 'builtin' })).toBe(0);
    expect(metricValue(text, 'icap_bridge_spool_bytes_on_disk')).toBe(0);
    // Bodies this small are scanned on the event loop (builtin inline_max_bytes), not in the pool.
    expect(metricValue(text, 'icap_bridge_scan_duration_seconds_count', { backend: 'builtin', endpoint: 'inline', outcome: 'clean' })).toBe(3);
    expect(metricValue(text, 'icap_bridge_verdict_cache_lookups_total', { service: 'respmod', result: 'miss' })).toBe(4);
    c.close();
  });
});
