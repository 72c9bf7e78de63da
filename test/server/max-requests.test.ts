/**
 * server.max_requests_per_connection (c-icap's MaxKeepAliveRequests): the Nth answer on a
 * connection carries `Connection: close` and the connection closes after it, whatever kind of
 * answer it is (204, 200 with a body, OPTIONS). 0 means no limit. Behind HAProxy this is what lets
 * traffic reach an instance again after a restart (test/integration/haproxy-squid.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildRequest, EICAR } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import type { ParsedResponse } from '../helpers/icap-response.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let srv: TestServer | null = null;
afterEach(async () => {
  await srv?.close();
  srv = null;
});

async function serverWith(max: number | null): Promise<TestServer> {
  const line = max === null ? '' : `  max_requests_per_connection: ${max}\n`;
  srv = await startTestServer(`server:\n  listen: [{ host: 127.0.0.1, port: 0 }]\n${line}`);
  return srv;
}

const REQUESTS = {
  reqmod: () => buildRequest({ method: 'REQMOD', service: 'reqmod', headers: [['Allow', '204']] }).first,
  options: () => buildRequest({ method: 'OPTIONS' }).first,
  // No Allow: 204, so the clean body is echoed in a 200; EICAR gets the block page.
  echo: () => buildRequest({ body: ['clean body'] }).first,
  infected: () => buildRequest({ body: [EICAR] }).first,
};

async function send(c: TestClient, kind: keyof typeof REQUESTS): Promise<ParsedResponse> {
  c.write(REQUESTS[kind]());
  return c.read(5_000);
}

describe('server.max_requests_per_connection', () => {
  it.each(['reqmod', 'options', 'echo', 'infected'] as const)('the 3rd of 3 (%s) says Connection: close, then the connection closes', async (last) => {
    const server = await serverWith(3);
    const c = await TestClient.connect(server.port);
    for (const kind of ['reqmod', 'echo'] as const) expect((await send(c, kind)).header('Connection')).toBeUndefined();
    const r = await send(c, last);
    expect(r.status).toBe(last === 'reqmod' ? 204 : 200);
    expect(r.header('Connection')).toBe('close');
    if (last === 'infected') expect(r.header('X-Infection-Found')).toContain('EICAR-Test-File');
    await c.waitClosed(5_000);
    expect(c.pending.length).toBe(0);
  });

  it('defaults to 100, as c-icap', async () => {
    const server = await serverWith(null);
    const c = await TestClient.connect(server.port);
    for (let i = 1; i < 100; i++) expect((await send(c, 'reqmod')).header('Connection'), `answer ${i}`).toBeUndefined();
    expect((await send(c, 'reqmod')).header('Connection')).toBe('close');
    await c.waitClosed(5_000);
  });

  it('0: no limit', async () => {
    const server = await serverWith(0);
    const c = await TestClient.connect(server.port);
    for (let i = 0; i < 250; i++) expect((await send(c, i % 2 ? 'reqmod' : 'options')).header('Connection')).toBeUndefined();
    expect(c.closed).toBe(false);
    c.close();
  });
});
