/**
 * "Commit on idle" (specs/squid-interop.md, Recipe 1), driven the way Debian's Squid 5.7 behaves:
 * RESPMOD without Allow: 204, a preview, 100 Continue, part of the body, then silence until the
 * server sends adapted bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest, EICAR, httpResponseHead } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { parseResponse } from '../helpers/icap-response.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer(`services:
  respmod:
    methods: [RESPMOD]
    commit_on_idle: { enabled: true, idle_ms: 100, max_bytes: 3 }
  nocommit:
    methods: [RESPMOD]
    commit_on_idle: { enabled: false }
  cutclose:
    methods: [RESPMOD]
    commit_on_idle: { enabled: true, idle_ms: 100, max_bytes: 3 }
    cut_after_commit: close
`);
});
afterAll(() => srv.close());

function body(size: number, tail?: Buffer): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = 0x41 + (i % 26);
  return tail ? Buffer.concat([b, tail]) : b;
}

/** Starts a Squid-like exchange and returns the client after 100 Continue and `sentBytes` more. */
async function stallAfter(payload: Buffer, sentBytes: number, opts: { service?: string; allow204?: boolean; contentLength?: boolean } = {}) {
  const req = buildRequest({
    service: opts.service ?? 'respmod',
    resHdr: opts.contentLength === false ? httpResponseHead() : httpResponseHead(payload.length),
    body: [payload],
    preview: 1024,
    headers: opts.allow204 ? [['Allow', '204']] : [],
  });
  const c = await TestClient.connect(srv.port);
  c.write(req.first);
  expect((await c.read()).status).toBe(100);
  c.write(req.rest.subarray(0, sentBytes));
  return { c, rest: req.rest.subarray(sentBytes) };
}

describe('commit on idle', () => {
  it('clean: commits after the idle gap, releases one byte per gap within the budget, then completes byte-identical', async () => {
    const payload = body(300_000);
    const { c, rest } = await stallAfter(payload, 100_000);
    await sleep(700); // ~6 idle gaps, but the budget is 3 bytes
    const early = c.pending.toString('latin1');
    expect(early).toMatch(/^ICAP\/1\.0 200 OK\r\n/);
    expect(early).toContain('X-ICAP-Bridge-Decision: pending; reason=committed-on-idle');
    expect(early).toContain(`Content-Length: ${payload.length}\r\n`); // kept, so clients can tell a cut
    expect(early.match(/(?<=\r\n)1\r\n[A-Z]\r\n/g)).toEqual(["1\r\nA\r\n", "1\r\nB\r\n", "1\r\nC\r\n"]);
    const record = srv.nextRecord();
    c.write(rest);
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.body!.equals(payload)).toBe(true);
    expect(await record).toMatchObject({ verdict: 'clean', reason: 'clean', committed: { kicks: 3, released_bytes: 3 } });
    c.close();
  });

  it('infected after a commit, Content-Length announced: the answer ends at once, its body short of it; the connection stays open', async () => {
    const payload = body(300_000, EICAR);
    const { c, rest } = await stallAfter(payload, 100_000);
    await sleep(450); // the 3 kicks of the budget
    expect(c.pending.toString('latin1')).toMatch(/^ICAP\/1\.0 200 OK\r\n/);
    const record = srv.nextRecord();
    c.write(rest);
    const r = await c.read();
    // A well-formed ICAP answer (no service failure for Squid to count) whose HTTP body stops
    // short of the Content-Length its head announced: the proxy cuts the client's transfer.
    expect(r.status).toBe(200);
    expect(r.resHdr).toContain(`Content-Length: ${payload.length}\r\n`);
    expect(r.body!.toString('latin1')).toBe('ABC');
    expect(await record).toMatchObject({ verdict: 'infected', reason: 'blocked-by-truncation', threats: ['EICAR-Test-File'], committed: { released_bytes: 3 } });
    // The same connection takes the next request.
    const next = buildRequest({ resHdr: httpResponseHead(5), body: [Buffer.from('hello')], headers: [['Allow', '204']] });
    c.write(next.first);
    c.write(next.rest);
    expect((await c.read()).status).toBe(204);
    c.close();
  });

  it('infected after a commit without a Content-Length: the connection closes without the last chunk (nothing else tells the client)', async () => {
    const payload = body(300_000, EICAR);
    const { c, rest } = await stallAfter(payload, 100_000, { contentLength: false });
    await sleep(250);
    expect(c.pending.toString('latin1')).toMatch(/^ICAP\/1\.0 200 OK\r\n/);
    const record = srv.nextRecord();
    c.write(rest);
    await c.waitClosed();
    expect(parseResponse(c.pending)).toBeNull(); // never a complete response
    expect(c.pending.includes(Buffer.from('\r\n0\r\n\r\n'))).toBe(false);
    expect(await record).toMatchObject({ verdict: 'infected', reason: 'blocked-by-truncation', threats: ['EICAR-Test-File'] });
  });

  it('cut_after_commit: close → closes without the last chunk even with a Content-Length', async () => {
    const payload = body(300_000, EICAR);
    const { c, rest } = await stallAfter(payload, 100_000, { service: 'cutclose' });
    await sleep(250);
    expect(c.pending.toString('latin1')).toMatch(/^ICAP\/1\.0 200 OK\r\n/);
    const record = srv.nextRecord();
    c.write(rest);
    await c.waitClosed();
    expect(parseResponse(c.pending)).toBeNull();
    expect(await record).toMatchObject({ verdict: 'infected', reason: 'blocked-by-truncation', threats: ['EICAR-Test-File'] });
  });

  it('a body that keeps flowing is never committed: the block page still arrives', async () => {
    const payload = body(300_000, EICAR);
    const { c, rest } = await stallAfter(payload, 0);
    for (let i = 0; i < rest.length; i += 50_000) {
      c.write(rest.subarray(i, i + 50_000));
      await sleep(20);
    }
    const r = await c.read();
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403/);
    c.close();
  });

  it('does not commit when the client sent Allow: 204 (its whole body fits Squid\'s pipe)', async () => {
    const payload = body(200_000);
    const { c, rest } = await stallAfter(payload, 50_000, { allow204: true });
    await sleep(300);
    expect(c.pending.length).toBe(0);
    c.write(rest);
    expect((await c.read()).status).toBe(204);
    c.close();
  });

  it('does not commit when disabled for the service', async () => {
    const payload = body(200_000);
    const { c, rest } = await stallAfter(payload, 50_000, { service: 'nocommit' });
    await sleep(300);
    expect(c.pending.length).toBe(0);
    c.write(rest);
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.body!.equals(payload)).toBe(true);
    c.close();
  });
});
