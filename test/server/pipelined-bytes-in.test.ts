/**
 * bytes_in of pipelined requests (RFC 3507 §4.2: persistent connections follow HTTP/1.1, which
 * lets a client send its next request before the answer, RFC 9112 §9.3.2). Each access line counts
 * exactly its own request's bytes on the wire: ICAP head, encapsulated heads and chunked body
 * framing. Counting what the socket had read by the time of the answer gave the first request
 * of one write every byte of it and the requests behind it nothing.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildRequest } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/** Answered at once, inside the decoder's event (no scan). */
const reqmodNoBody = buildRequest({ method: 'REQMOD', headers: [['Allow', '204']] }).first;
/** A body in two chunks with a trailer: answered after a scan, from a promise. */
const respmodWithBody = buildRequest({ body: ['first piece', 'second'], trailers: 'X-Trailer: 1\r\n', headers: [['Allow', '204, trailers']] }).first;
/** OPTIONS goes through its own answer path (no transaction). */
const options = buildRequest({ method: 'OPTIONS', service: 'respmod' }).first;

describe('bytes_in of pipelined requests', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.close());

  /** The access records logged since `from`, one per method, once all `methods` have one. */
  async function accessByMethod(from: number, methods: string[]): Promise<Map<string, Record<string, unknown>>> {
    return vi.waitUntil(
      () => {
        const found = new Map<string, Record<string, unknown>>();
        for (const line of srv.logs.slice(from)) {
          const access = line['access'] as Record<string, unknown> | undefined;
          if (access !== undefined) found.set(access['method'] as string, access);
        }
        return methods.every((m) => found.has(m)) ? found : undefined;
      },
      { timeout: 5000 },
    );
  }

  it('counts each of three requests sent in one write as its own bytes', async () => {
    const from = srv.logs.length;
    const c = await TestClient.connect(srv.port);
    try {
      c.write(Buffer.concat([reqmodNoBody, respmodWithBody, options]));
      for (let i = 0; i < 3; i++) expect([200, 204]).toContain((await c.read()).status);
      const access = await accessByMethod(from, ['REQMOD', 'RESPMOD', 'OPTIONS']);
      expect(access.get('REQMOD')!['bytes_in']).toBe(reqmodNoBody.length);
      expect(access.get('RESPMOD')!['bytes_in']).toBe(respmodWithBody.length);
      expect(access.get('OPTIONS')!['bytes_in']).toBe(options.length);
    } finally {
      c.close();
    }
  });

  it('counts a request whose bytes came with the start of the next one', async () => {
    const from = srv.logs.length;
    const c = await TestClient.connect(srv.port);
    try {
      const split = 40; // inside the RESPMOD's ICAP head
      c.write(Buffer.concat([reqmodNoBody, respmodWithBody.subarray(0, split)]));
      expect((await c.read()).status).toBe(204);
      c.write(respmodWithBody.subarray(split));
      expect((await c.read()).status).toBe(204);
      const access = await accessByMethod(from, ['REQMOD', 'RESPMOD']);
      expect(access.get('REQMOD')!['bytes_in']).toBe(reqmodNoBody.length);
      expect(access.get('RESPMOD')!['bytes_in']).toBe(respmodWithBody.length);
    } finally {
      c.close();
    }
  });
});
