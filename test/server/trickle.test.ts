/**
 * Trickle delivery (services.NAME.trickle, src/server/trickle.ts) over raw sockets: a large
 * RESPMOD body flows to the client while it arrives, all but the last hold_back_bytes; the
 * verdict then sends the tail (clean) or cuts the connection before it (infected). Bodies here
 * are a few MiB, so the spool (1 MiB in memory) spills and bytes are forwarded from its temp file.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest, EICAR, httpRequestHead, httpResponseHead } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { parseResponse } from '../helpers/icap-response.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const MiB = 1024 * 1024;
const MIN = MiB;
const HOLD = 256 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer(`services:
  respmod:
    methods: [RESPMOD, REQMOD]
    commit_on_idle: { enabled: false }
    trickle: { enabled: true, min_body_bytes: ${MIN}, hold_back_bytes: ${HOLD} }
    rules:
      - name: denied
        match: { host: [denied.example] }
        action: block
  kicks:
    methods: [RESPMOD]
    commit_on_idle: { enabled: true, idle_ms: 50, max_bytes: 4 }
    trickle: { enabled: true, min_body_bytes: ${MIN}, hold_back_bytes: ${2 * MiB} }
`);
});
afterAll(() => srv.close());

function payload(size: number, tail?: Buffer): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + (i >> 12)) & 0xff;
  return tail ? Buffer.concat([b, tail]) : b;
}

/**
 * What a started 200 answer holds so far: the ICAP head, the HTTP head and the body bytes of its
 * complete chunks; `ended` once the last chunk arrived.
 */
function early(buf: Buffer): { head: string; resHdr: string; body: Buffer; ended: boolean } | null {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd === -1) return null;
  const head = buf.toString('latin1', 0, headEnd + 4);
  const bodyAt = /res-body=(\d+)/.exec(head);
  if (bodyAt === null) return null;
  let pos = headEnd + 4 + Number(bodyAt[1]);
  if (buf.length < pos) return null;
  const resHdr = buf.toString('latin1', headEnd + 4, pos);
  const parts: Buffer[] = [];
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', pos);
    if (lineEnd === -1) break;
    const size = parseInt(buf.toString('latin1', pos, lineEnd), 16);
    if (size === 0) return { head, resHdr, body: Buffer.concat(parts), ended: true };
    if (buf.length < lineEnd + 2 + size + 2) break;
    parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
  return { head, resHdr, body: Buffer.concat(parts), ended: false };
}

/** Waits (bounded) until the client holds at least `bytes` early body bytes; returns what it holds. */
async function untilForwarded(c: TestClient, bytes: number, timeoutMs = 10_000): Promise<NonNullable<ReturnType<typeof early>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = early(c.pending);
    if (e !== null && e.body.length >= bytes) return e;
    if (Date.now() > deadline) throw new Error(`only ${e?.body.length ?? 'no answer'} of ${bytes} early bytes after ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Writes with the socket's backpressure, in 256 KiB pieces. */
async function send(c: TestClient, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += 256 * 1024) {
    if (!c.socket.write(data.subarray(at, at + 256 * 1024))) await new Promise((r) => c.socket.once('drain', r));
  }
}

describe('trickle delivery', () => {
  it('Content-Length ≥ min_body_bytes: the answer starts after 100 Continue, bytes flow all but the held-back tail, clean → byte-identical', async () => {
    const body = payload(3 * MiB);
    const req = buildRequest({ resHdr: httpResponseHead(body.length), body: [body], preview: 1024 });
    const c = await TestClient.connect(srv.port);
    c.write(req.first);
    expect((await c.read()).status).toBe(100);
    const record = srv.nextRecord();
    const sentRest = 2 * MiB;
    await send(c, req.rest.subarray(0, sentRest));
    // The rest arrives as one chunk: its size line (and CRLF) comes before the body bytes.
    const received = 1024 + sentRest - req.rest.indexOf('\r\n') - 2;
    const e = await untilForwarded(c, received - HOLD);
    expect(e.head).toMatch(/^ICAP\/1\.0 200 OK\r\n/);
    expect(e.head).toContain('X-ICAP-Bridge-Decision: pending; reason=trickle');
    expect(e.resHdr).toContain(`Content-Length: ${body.length}\r\n`);
    // The hold-back line holds: nothing past it goes out while the body is incomplete.
    await sleep(150);
    const still = early(c.pending)!;
    expect(still.body.length).toBe(received - HOLD);
    expect(still.body.equals(body.subarray(0, received - HOLD))).toBe(true);
    expect(still.ended).toBe(false);
    await send(c, req.rest.subarray(sentRest));
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.body!.equals(body)).toBe(true);
    expect(await record).toMatchObject({ verdict: 'clean', reason: 'clean', icap_status: 200, body_bytes: body.length });
    // Forwarded before the verdict: never the held-back tail (how much depends on the client's pace).
    expect((await record).committed!.released_bytes).toBeGreaterThanOrEqual(received - HOLD);
    expect((await record).committed!.released_bytes).toBeLessThanOrEqual(body.length - HOLD);
    c.close();
  });

  it('infected (EICAR at the very end), Content-Length announced: the answer ends without the tail, short of it; logged blocked-by-truncation', async () => {
    const body = payload(3 * MiB, EICAR);
    const req = buildRequest({ resHdr: httpResponseHead(body.length), body: [body], preview: 1024 });
    const c = await TestClient.connect(srv.port);
    c.write(req.first);
    expect((await c.read()).status).toBe(100);
    const record = srv.nextRecord();
    await send(c, req.rest);
    // cut_after_commit: short-body (the default): a complete ICAP answer, so Squid counts no
    // service failure; its HTTP body stops short of Content-Length, so the client's transfer is cut.
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.resHdr).toContain(`Content-Length: ${body.length}\r\n`);
    const e = { body: r.body! };
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('pending; reason=trickle');
    expect(c.closed).toBe(false);
    c.close();
    expect(e.body.length).toBeGreaterThan(0);
    expect(e.body.length).toBeLessThanOrEqual(body.length - HOLD);
    expect(e.body.equals(body.subarray(0, e.body.length))).toBe(true);
    expect(await record).toMatchObject({ verdict: 'infected', reason: 'blocked-by-truncation', threats: ['EICAR-Test-File'], icap_status: 200 });
    const cut = srv.logs.find((l) => l.msg === 'trickled answer cut: blocked by truncation' && l.verdict === 'infected');
    expect(cut).toBeDefined();
  });

  it('no Content-Length: trickling starts once the body itself reaches min_body_bytes', async () => {
    const body = payload(3 * MiB);
    const req = buildRequest({ resHdr: httpResponseHead(), body: [body] }); // no preview, chunked origin
    const c = await TestClient.connect(srv.port);
    const record = srv.nextRecord();
    const chunkLine = req.first.length - '\r\n0\r\n\r\n'.length - body.length; // where the body bytes start
    await send(c, req.first.subarray(0, chunkLine + MIN / 2));
    await sleep(150);
    expect(c.pending.length).toBe(0); // below the threshold: nothing early
    const upTo = chunkLine + 2 * MiB;
    await send(c, req.first.subarray(chunkLine + MIN / 2, upTo));
    const e = await untilForwarded(c, 2 * MiB - HOLD);
    expect(e.head).toContain('pending; reason=trickle');
    await send(c, req.first.subarray(upTo));
    const r = await c.read();
    expect(r.body!.equals(body)).toBe(true);
    expect(await record).toMatchObject({ verdict: 'clean' });
    c.close();
  });

  it('below min_body_bytes nothing changes: an infected body gets the block page', async () => {
    const body = payload(MIN / 2, EICAR);
    const req = buildRequest({ resHdr: httpResponseHead(body.length), body: [body], preview: 1024 });
    const c = await TestClient.connect(srv.port);
    c.write(req.first);
    expect((await c.read()).status).toBe(100);
    c.write(req.rest);
    const r = await c.read();
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    c.close();
  });

  it('a block the headers settled keeps its block page, however large the body', async () => {
    const body = payload(3 * MiB);
    const reqHdr = 'GET http://denied.example/big.iso HTTP/1.1\r\nHost: denied.example\r\n\r\n';
    const req = buildRequest({ reqHdr, resHdr: httpResponseHead(body.length), body: [body] });
    const c = await TestClient.connect(srv.port);
    await send(c, req.first);
    const r = await c.read();
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.header('X-ICAP-Bridge-Decision')).toContain('rule=denied');
    c.close();
  });

  it('REQMOD is never trickled', async () => {
    const body = payload(3 * MiB);
    const req = buildRequest({ method: 'REQMOD', service: 'respmod', reqHdr: httpRequestHead('http://example.com/upload', `Content-Length: ${body.length}\r\n`), body: [body] });
    const c = await TestClient.connect(srv.port);
    await send(c, req.first.subarray(0, req.first.length - 100));
    await sleep(150);
    expect(c.pending.length).toBe(0);
    c.write(req.first.subarray(req.first.length - 100));
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.body!.equals(body)).toBe(true);
    c.close();
  });

  it('a client that does not read its answer does not stop the body from being read (the spool takes it), and gets every byte later', async () => {
    const body = payload(24 * MiB);
    const req = buildRequest({ resHdr: httpResponseHead(body.length), body: [body] });
    // A plain socket collecting pieces (TestClient concatenates on every read: quadratic at this size).
    const socket = connect({ port: srv.port, host: '127.0.0.1' });
    await once(socket, 'connect');
    socket.pause(); // read nothing of the answer
    const record = srv.nextRecord();
    for (let at = 0; at < req.first.length; at += 256 * 1024) {
      // Resolves only as the server takes the bytes: far more than the socket buffers hold.
      if (!socket.write(req.first.subarray(at, at + 256 * 1024))) await once(socket, 'drain');
    }
    const pieces: Buffer[] = [];
    socket.on('data', (d: Buffer) => pieces.push(d));
    socket.resume();
    const rec = await record; // written once the last chunk went out
    let r = null;
    for (let waited = 0; r === null && waited < 10_000; waited += 20) {
      r = parseResponse(Buffer.concat(pieces));
      if (r === null) await sleep(20);
    }
    expect(r).not.toBeNull();
    expect(r!.status).toBe(200);
    expect(r!.body!.equals(body)).toBe(true);
    expect(rec).toMatchObject({ verdict: 'clean', body_bytes: body.length });
    socket.destroy();
  });

  it('with commit on idle: a silent body before the first hold_back_bytes gets one kick byte per idle gap, from the spool', async () => {
    const body = payload(3 * MiB);
    const req = buildRequest({ service: 'kicks', resHdr: httpResponseHead(body.length), body: [body], preview: 1024 });
    const c = await TestClient.connect(srv.port);
    c.write(req.first);
    expect((await c.read()).status).toBe(100);
    const record = srv.nextRecord();
    await send(c, req.rest.subarray(0, MiB)); // under the 2 MiB hold-back: nothing may go out but kicks
    const e = await untilForwarded(c, 4, 5_000);
    expect(e.head).toContain('pending; reason=trickle');
    await sleep(300); // more idle gaps than the budget of 4
    const still = early(c.pending)!;
    expect(still.body.equals(body.subarray(0, 4))).toBe(true);
    await send(c, req.rest.subarray(MiB));
    const r = await c.read();
    expect(r.body!.equals(body)).toBe(true);
    expect(await record).toMatchObject({ verdict: 'clean', committed: { kicks: 4 } });
    c.close();
  });
});
