/**
 * A response with many headers (130 Set-Cookie lines, as real sites send) passes with the default
 * limits: Squid counts a refused head as an ICAP failure and, after ten, suspends the service for
 * every user.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange } from '../helpers/icap-exchange.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

describe('default header limits', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer('services:\n  respmod: { methods: [RESPMOD] }\n');
  });
  afterAll(() => srv.close());

  it('a response head with 600 headers is scanned and answered 204', async () => {
    const cookies = Array.from({ length: 600 }, (_, i) => `Set-Cookie: c${i}=v${i}; Path=/\r\n`).join('');
    const resHdr = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${cookies}\r\n`;
    const r = await exchange(srv.port, { resHdr, body: ['hello'], headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
  });
});
