/**
 * 206 Partial Content (icap-extensions.md §C) over raw sockets: advertised in OPTIONS when a
 * service enables it, sent for an unchanged message only when the request carried Allow: 206 and
 * the client still holds the whole body (answering a preview, or with Allow: 204 too), and only
 * where no 204 goes out. The real-Squid side is test/integration/squid-206.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { may206 } from '../../src/server/partial-content.js';
import { planResponse, type Decision } from '../../src/verdict/index.js';
import { buildRequest, EICAR, httpRequestHead, httpResponseHead } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { exchangeOnConnection, type WireRequest } from '../helpers/icap-exchange.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

describe('may206', () => {
  const facts = { serviceAllows206: true, allow: new Set(['206']), hasBodyAndHead: true, answeringPreview: true };
  it.each([
    ['answering a preview with Allow: 206', facts, true],
    ['the service does not allow it', { ...facts, serviceAllows206: false }, false],
    ['the request did not offer 206', { ...facts, allow: new Set(['204']) }, false],
    ['no body or no HTTP head to splice', { ...facts, hasBodyAndHead: false }, false],
    ['after the preview with a bare Allow: 206 (Squid: inside previews only)', { ...facts, answeringPreview: false }, false],
    ['after the preview with Allow: 204, 206 (the client holds the whole body)', { ...facts, answeringPreview: false, allow: new Set(['204', '206']) }, true],
  ])('%s → %s', (_label, f, expected) => {
    expect(may206(f)).toBe(expected);
  });
});

describe('planResponse with may206', () => {
  const clean: Decision = { action: 'allow', reason: 'clean' } as Decision;
  const base = { method: 'RESPMOD' as const, transactionId: 't', serviceName: 's', url: '', blockPageTemplate: '{{threat}}' };
  it.each([
    [true, true, true, 'no-content'], // 204 wins where it may go out: nothing to send at all
    [true, false, true, 'partial-content'],
    [false, true, true, 'partial-content'],
    [false, true, false, 'echo'],
    [true, false, false, 'echo'],
  ] as const)('may204=%s allow_204=%s may206=%s → %s', (may204, serviceAllows204, may206Flag, kind) => {
    expect(planResponse(clean, { ...base, may204, serviceAllows204, may206: may206Flag }).kind).toBe(kind);
  });

  it('never turns a block into a 206', () => {
    const infected = { action: 'block', reason: 'infected', threats: [{ backend: 'b', name: 'EICAR-Test-File' }], errors: [] } as unknown as Decision;
    expect(planResponse(infected, { ...base, may204: true, serviceAllows204: false, may206: true }).kind).toBe('block');
  });
});

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer(`services:
  respmod:
    methods: [RESPMOD]
    allow_206: true
  no204:
    methods: [REQMOD, RESPMOD]
    allow_204: false
    allow_206: true
    rules:
      - name: trusted
        match: { host: [trusted.example] }
        action: allow
  no206:
    methods: [RESPMOD]
    allow_204: false
    rules:
      - name: trusted
        match: { host: [trusted.example] }
        action: allow
`);
});
afterAll(() => srv.close());

function payload(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = 0x61 + (i % 26);
  return b;
}

const RES_HDR = httpResponseHead(300_000);
const TRUSTED = 'GET http://trusted.example/big.iso HTTP/1.1\r\nHost: trusted.example\r\n\r\n';
const OTHER = httpRequestHead('http://other.example/file.bin');

const exchange = (req: WireRequest, client?: TestClient): ReturnType<typeof exchangeOnConnection> => exchangeOnConnection(srv.port, req, client);

describe('OPTIONS', () => {
  it.each([
    ['respmod', '204, 206'],
    ['no204', '206'],
  ])('/%s advertises Allow: %s', async (service, allow) => {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS', service }).first);
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.headers.get('allow')).toEqual([allow]);
    c.close();
  });

  it('a service without 204 and 206 sends no Allow header', async () => {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS', service: 'no206' }).first);
    expect((await c.read()).header('Allow')).toBeUndefined();
    c.close();
  });
});

describe('206 answering a preview', () => {
  it('an allow settled by the preview: 206 with the original head and use-original-body=0; the rest is never asked for', async () => {
    const body = payload(300_000);
    const req = buildRequest({ service: 'no204', reqHdr: TRUSTED, resHdr: RES_HDR, body: [body], preview: 1024, headers: [['Allow', '206']] });
    const record = srv.nextRecord();
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([206]); // no 100 Continue
    const r = responses[0]!;
    expect(r.reason).toBe('Partial Content');
    expect(r.encapsulated).toBe(`res-hdr=0, res-body=${Buffer.byteLength(RES_HDR)}`);
    expect(r.resHdr).toBe(RES_HDR);
    expect(r.body!.length).toBe(0);
    expect(r.lastChunkExtension).toBe('use-original-body=0');
    expect(r.header('ISTag')).toMatch(/^"IB-/);
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=rule; rule=trusted');
    expect(await record).toMatchObject({ icap_status: 206, http_status: 200, verdict: 'rule-allowed', rule: 'trusted', body_bytes: 1024 });
    // The connection carries on: the next request is read from where the preview ended.
    const next = await exchange(buildRequest({ service: 'no204', reqHdr: OTHER, resHdr: httpResponseHead(5), body: ['hello'] }), client);
    expect(next.responses.map((x) => x.status)).toEqual([200]);
    expect(next.responses[0]!.body!.toString()).toBe('hello');
    client.close();
  });

  it('REQMOD: the 206 carries the request head (req-hdr, req-body)', async () => {
    const req = buildRequest({ method: 'REQMOD', service: 'no204', reqHdr: TRUSTED, body: [payload(5000)], preview: 1024, headers: [['Allow', '206']] });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([206]);
    expect(responses[0]!.encapsulated).toBe(`req-hdr=0, req-body=${Buffer.byteLength(TRUSTED)}`);
    expect(responses[0]!.reqHdr).toBe(TRUSTED);
    expect(responses[0]!.lastChunkExtension).toBe('use-original-body=0');
    client.close();
  });

  it('without Allow: 206 from the client, the body is read and echoed (200)', async () => {
    const body = payload(20_000);
    const req = buildRequest({ service: 'no204', reqHdr: TRUSTED, resHdr: httpResponseHead(body.length), body: [body], preview: 1024 });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([100, 200]);
    expect(responses[1]!.body!.equals(body)).toBe(true);
    client.close();
  });

  it('with allow_206 off (the default), Allow: 206 from the client changes nothing', async () => {
    const body = payload(20_000);
    const req = buildRequest({ service: 'no206', reqHdr: TRUSTED, resHdr: httpResponseHead(body.length), body: [body], preview: 1024, headers: [['Allow', '204, 206']] });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([100, 200]);
    expect(responses[1]!.body!.equals(body)).toBe(true);
    client.close();
  });

  it('where a 204 may go out it wins: Allow: 204, 206 on a service with both → 204 inside the preview', async () => {
    const req = buildRequest({ service: 'respmod', reqHdr: OTHER, resHdr: httpResponseHead(500), body: [payload(500)], preview: 1024, headers: [['Allow', '204, 206']] });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([204]);
    client.close();
  });
});

describe('206 after the whole body', () => {
  it.each([
    ['ieof preview', 1024],
    ['no preview', undefined],
  ])('%s, scanned clean, Allow: 204, 206 on a service without 204 → 206', async (_label, preview) => {
    const body = payload(800);
    const req = buildRequest({ service: 'no204', reqHdr: OTHER, resHdr: httpResponseHead(body.length), body: [body], ...(preview !== undefined && { preview }), headers: [['Allow', '204, 206']] });
    const record = srv.nextRecord();
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([206]);
    expect(responses[0]!.lastChunkExtension).toBe('use-original-body=0');
    expect(responses[0]!.header('X-ICAP-Bridge-Decision')).toMatch(/^allow; reason=clean\b/); // the second is a cache hit
    expect(await record).toMatchObject({ icap_status: 206, verdict: 'clean', body_bytes: 800 });
    client.close();
  });

  it.each([
    ['ieof preview', 1024],
    ['no preview', undefined],
  ])('%s with a bare Allow: 206 (only promised inside a preview) → 200 echo', async (_label, preview) => {
    const body = payload(800);
    const req = buildRequest({ service: 'no204', reqHdr: OTHER, resHdr: httpResponseHead(body.length), body: [body], ...(preview !== undefined && { preview }), headers: [['Allow', '206']] });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([200]);
    expect(responses[0]!.body!.equals(body)).toBe(true);
    client.close();
  });

  it('after 100 Continue, Allow: 204, 206: clean → 206, infected → 200 with the block page', async () => {
    const clean = payload(30_000);
    const first = await exchange(buildRequest({ service: 'no204', reqHdr: OTHER, resHdr: httpResponseHead(clean.length), body: [clean], preview: 1024, headers: [['Allow', '204, 206']] }));
    expect(first.responses.map((r) => r.status)).toEqual([100, 206]);
    first.client.close();
    const infected = Buffer.concat([payload(30_000), EICAR]);
    const second = await exchange(buildRequest({ service: 'no204', reqHdr: OTHER, resHdr: httpResponseHead(infected.length), body: [infected], preview: 1024, headers: [['Allow', '204, 206']] }));
    expect(second.responses.map((r) => r.status)).toEqual([100, 200]);
    expect(second.responses[1]!.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(second.responses[1]!.lastChunkExtension).toBeNull();
    second.client.close();
  });

  it('a body-less message is never answered 206', async () => {
    const req = buildRequest({ service: 'no204', reqHdr: OTHER, resHdr: httpResponseHead(0), headers: [['Allow', '204, 206']] });
    const { responses, client } = await exchange(req);
    expect(responses.map((r) => r.status)).toEqual([200]);
    client.close();
  });
});
