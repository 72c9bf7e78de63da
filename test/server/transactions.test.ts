/** REQMOD/RESPMOD over real sockets: preview and 100 Continue, 204 rules, echo, block, ordering. */
import { writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest, EICAR, httpRequestHead, httpResponseHead } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { exchangeOnConnection, type WireRequest } from '../helpers/icap-exchange.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const text = (n: number, seed = 'a'): Buffer => Buffer.alloc(n, seed);

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv.close());

const exchange = (req: WireRequest): ReturnType<typeof exchangeOnConnection> => exchangeOnConnection(srv.port, req);

describe('clean bodies', () => {
  it('RESPMOD with Allow: 204 → 204', async () => {
    const { responses, client } = await exchange(buildRequest({ body: [text(5000)], headers: [['Allow', '204']] }));
    expect(responses.map((r) => r.status)).toEqual([204]);
    expect(responses[0]!.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
    client.close();
  });

  it('RESPMOD without Allow: 204 → 200 echoing the original header bytes, body and trailers', async () => {
    const resHdr = httpResponseHead(9000, 'X-Weird-Case:   spaced  value\r\n');
    const req = buildRequest({ resHdr, body: [text(4000, 'x'), text(5000, 'y')], trailers: 'X-Trailer: t\r\n' });
    const { responses, client } = await exchange(req);
    const r = responses[0]!;
    expect(r.status).toBe(200);
    expect(r.resHdr).toBe(resHdr);
    expect(r.reqHdr).toBeNull();
    expect(r.body?.equals(req.body)).toBe(true);
    expect(r.trailers).toBe('X-Trailer: t\r\n');
    client.close();
  });

  it('REQMOD POST without Allow: 204 → 200 echoing the request head and body', async () => {
    const reqHdr = 'POST http://example.com/upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 12\r\n\r\n';
    const { responses, client } = await exchange(buildRequest({ method: 'REQMOD', reqHdr, body: ['hello world!'] }));
    const r = responses[0]!;
    expect(r.status).toBe(200);
    expect(r.encapsulated).toMatch(/^req-hdr=0, req-body=\d+$/);
    expect(r.reqHdr).toBe(reqHdr);
    expect(r.body?.toString()).toBe('hello world!');
    client.close();
  });

  it('REQMOD null-body (GET) → 204 with Allow, echo of the head without', async () => {
    const a = await exchange(buildRequest({ method: 'REQMOD', headers: [['Allow', '204']] }));
    expect(a.responses[0]!.status).toBe(204);
    const b = await exchange(buildRequest({ method: 'REQMOD' }));
    expect(b.responses[0]!.status).toBe(200);
    expect(b.responses[0]!.encapsulated).toMatch(/^req-hdr=0, null-body=\d+$/);
    expect(b.responses[0]!.reqHdr).toBe(httpRequestHead());
    a.client.close();
    b.client.close();
    const rec = srv.records.at(-1)!;
    expect(rec.verdict).toBe('not-scanned');
  });

  it('an empty body is clean without a scan', async () => {
    const { responses, client } = await exchange(buildRequest({ body: [], headers: [['Allow', '204']] }));
    expect(responses[0]!.status).toBe(204);
    expect(srv.records.at(-1)).toMatchObject({ verdict: 'not-scanned', scans: [] });
    client.close();
  });
});

describe('preview (RFC 3507 §4.5)', () => {
  it('sends 100 Continue after a preview without ieof, then answers', async () => {
    const req = buildRequest({ body: [text(3000)], preview: 1024, headers: [['Allow', '204']] });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([100, 204]);
    client.close();
  });

  it('never sends 100 after ieof, and may answer 204 without Allow: 204', async () => {
    const req = buildRequest({ body: [text(500)], preview: 1024 });
    expect(req.rest.length).toBe(0);
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([204]);
    await new Promise((r) => setTimeout(r, 50));
    expect(client.pending.length).toBe(0);
    client.close();
  });

  it('outside the preview, without Allow: 204, answers 200 echo', async () => {
    const req = buildRequest({ body: [text(3000)], preview: 1024 });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([100, 200]);
    expect(responses[1]!.body?.equals(req.body)).toBe(true);
    client.close();
  });

  it('handles Preview: 0', async () => {
    const req = buildRequest({ body: [text(10)], preview: 0, headers: [['Allow', '204']] });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([100, 204]);
    client.close();
  });
});

describe('infected bodies', () => {
  function expectBlock(r: Awaited<ReturnType<TestClient['read']>>): void {
    expect(r.status).toBe(200);
    expect(r.encapsulated).toMatch(/^res-hdr=0, res-body=\d+$/);
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
    expect(r.header('X-Violations-Found')).toMatch(/^1\r\n\t/);
    const cl = /Content-Length: (\d+)/.exec(r.resHdr!)![1];
    expect(r.body!.length).toBe(Number(cl));
    expect(r.body!.toString()).toContain('EICAR-Test-File');
  }

  it('RESPMOD EICAR → 200 carrying a 403 block page, even with Allow: 204', async () => {
    const { responses, client } = await exchange(buildRequest({ body: [EICAR], headers: [['Allow', '204']] }));
    expectBlock(responses[0]!);
    expect(srv.records.at(-1)).toMatchObject({ verdict: 'infected', threats: ['EICAR-Test-File'], icap_status: 200, http_status: 403 });
    client.close();
  });

  it('REQMOD upload with EICAR → 403 response (request satisfaction)', async () => {
    const reqHdr = 'POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\n\r\n';
    const { responses, client } = await exchange(buildRequest({ method: 'REQMOD', reqHdr, body: [EICAR] }));
    expectBlock(responses[0]!);
    client.close();
  });

  it('finds EICAR after the preview and split across chunks', async () => {
    const body = [text(2000), EICAR.subarray(0, 30), EICAR.subarray(30), text(100)];
    const { responses, client } = await exchange(buildRequest({ body, preview: 1024 }));
    expect(responses[0]!.status).toBe(100);
    expectBlock(responses[1]!);
    client.close();
  });

  it('finds EICAR in a body that spilled to disk', async () => {
    const body = [text(3 * 1024 * 1024), EICAR];
    const { responses, client } = await exchange(buildRequest({ body, headers: [['Allow', '204']] }));
    expectBlock(responses[0]!);
    client.close();
  });

  it('HTML-escapes the URL in the block page', async () => {
    const reqHdr = httpRequestHead('http://example.com/<script>alert(1)</script>');
    const { responses, client } = await exchange(buildRequest({ reqHdr, body: [EICAR] }));
    expect(responses[0]!.body!.toString()).not.toContain('<script>alert');
    expect(responses[0]!.body!.toString()).toContain('&lt;script&gt;');
    client.close();
  });
});

describe('persistent connections', () => {
  it('answers two requests written back to back, in order', async () => {
    const c = await TestClient.connect(srv.port);
    const clean = buildRequest({ body: [text(100)], headers: [['Allow', '204']] });
    const infected = buildRequest({ body: [EICAR], headers: [['Allow', '204']] });
    c.write(Buffer.concat([infected.first, clean.first, buildRequest({ method: 'OPTIONS' }).first]));
    expect((await c.read()).status).toBe(200);
    expect((await c.read()).status).toBe(204);
    expect((await c.read()).header('Methods')).toBe('RESPMOD');
    c.close();
  });
});

describe('hash lists', () => {
  it('blocks a body whose SHA-256 is listed, with the listed name', async () => {
    const body = Buffer.from('a file our threat intel knows about\n');
    const sha = createHash('sha256').update(body).digest('hex');
    const dir = srv.spoolDir;
    const list = join(dir, '..', 'hashes.txt');
    writeFileSync(list, `# test list\n${sha} Test.Known-Bad\n`);
    const s2 = await startTestServer(`backends:\n  builtin:\n    type: builtin\n    hash_lists: [${list}]\n`);
    try {
      const c = await TestClient.connect(s2.port);
      c.write(buildRequest({ body: [body] }).first);
      const r = await c.read();
      expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=Test.Known-Bad;');
      c.close();
    } finally {
      await s2.close();
    }
  });
});
