/**
 * The icap backend against scripted fake upstreams on 127.0.0.1 (icap-fake-upstream.ts): OPTIONS
 * learnt and refreshed, preview and 100 Continue, keep-alive reuse, failover, broken answers,
 * timeouts, streaming with backpressure, and the encapsulated HTTP heads.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BackendResult, ScanMeta, StreamingScan } from '../../src/backends/backend.js';
import { createIcapBackend, VERSION_UNAVAILABLE, type IcapBackend } from '../../src/backends/icap/icap-backend.js';
import { ICAP_DEFAULTS, ICAP_POOL_DEFAULTS, type IcapBackendConfig } from '../../src/backends/icap/icap-config.js';
import { UPSTREAM_BLOCKED } from '../../src/backends/icap/threat-headers.js';
import { poolSettings } from '../../src/backends/pool/pool-settings.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { makeTestCerts } from '../helpers/tls-certs.js';
import { blockAnswer, echoAnswer, NO_CONTENT, optionsAnswer, startFakeUpstream, type FakeUpstream, type Script } from './icap-fake-upstream.js';

const META: ScanMeta = { transactionId: 't-icap', method: 'RESPMOD', clientAddress: '127.0.0.1', url: 'http://example.com/file.bin', contentType: 'application/octet-stream' };
const INFECTED = blockAnswer('X-Infection-Found: Type=0; Resolution=2; Threat=Fake.Virus;\r\n');

const upstreams: FakeUpstream[] = [];
const backends: IcapBackend[] = [];

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
});

async function upstream(script: Script = {}, tls?: { cert: Buffer; key: Buffer }): Promise<FakeUpstream> {
  const u = await startFakeUpstream(script, tls);
  upstreams.push(u);
  return u;
}

async function backendFor(endpoints: string[], overrides: Partial<IcapBackendConfig> = {}): Promise<IcapBackend> {
  const config: IcapBackendConfig = {
    // Health checks far apart, so they never interleave with what a test counts.
    ...poolSettings(ICAP_POOL_DEFAULTS, { health_interval_ms: 600_000, health_timeout_ms: 1_000 }),
    ...ICAP_DEFAULTS,
    endpoints,
    timeout_ms: 5_000,
    connect_timeout_ms: 1_000,
    ...overrides,
  };
  const b = await createIcapBackend('up', config);
  backends.push(b);
  return b;
}

const signal = (): AbortSignal => new AbortController().signal;
const body = (n: number): Buffer => Buffer.alloc(n, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const scanRequests = (u: FakeUpstream) => u.requests.filter((r) => r.method !== 'OPTIONS');
const optionsRequests = (u: FakeUpstream) => u.requests.filter((r) => r.method === 'OPTIONS');

async function feed(scan: StreamingScan, parts: readonly Buffer[]): Promise<BackendResult> {
  for (const part of parts) {
    if (!scan.write(part)) await new Promise<void>((resolve) => scan.onDrain(resolve));
  }
  return scan.end();
}

describe('OPTIONS', () => {
  it('is asked at start; its ISTag is the version; Preview and Allow: 204 shape the request', async () => {
    const u = await upstream();
    const b = await backendFor([u.url()]);
    expect(b.version).toBe('icap "FAKE-1"');
    expect(b.status()).toEqual([{ endpoint: u.url(), healthy: true, inFlight: 0, queued: 0 }]);
    expect(optionsRequests(u)).toHaveLength(1);
    expect(optionsRequests(u)[0]!.raw).toBe(`OPTIONS ${u.url()} ICAP/1.0\r\nHost: 127.0.0.1:${u.port}\r\nUser-Agent: icap-bridge\r\nEncapsulated: null-body=0\r\n\r\n`);

    const data = body(100);
    expect(await b.scan(spooledBodyFromBuffer(data), META, signal())).toMatchObject({ outcome: 'clean', backend: 'up', endpoint: u.url() });
    const [req] = scanRequests(u);
    expect(req!.raw).toMatch(new RegExp(`^RESPMOD ${u.url()} ICAP/1.0\r\nHost: 127.0.0.1:${u.port}\r\nAllow: 204\r\nPreview: 10\r\nEncapsulated: req-hdr=0, res-hdr=\\d+, res-body=\\d+\r\n\r\n$`));
    expect(req).toMatchObject({ previewBytes: 10, ieof: false, continued: true, complete: true });
    expect(req!.body.equals(data)).toBe(true);
  });

  it('is refreshed once Options-TTL runs out, and the new ISTag becomes the version', async () => {
    let istag = '"FAKE-1"';
    const u = await upstream({ options: () => optionsAnswer({ 'Options-TTL': '1' }, istag) });
    const b = await backendFor([u.url()]);
    await b.scan(spooledBodyFromBuffer(body(20)), META, signal());
    expect(optionsRequests(u)).toHaveLength(1);
    istag = '"FAKE-2"';
    await sleep(1_100);
    expect(await b.scan(spooledBodyFromBuffer(body(20)), META, signal())).toMatchObject({ outcome: 'clean' });
    expect(optionsRequests(u)).toHaveLength(2);
    expect(b.version).toBe('icap "FAKE-2"');
  });

  it('a scan that joins an OPTIONS refresh a streaming scan started keeps its own deadline and abort', async () => {
    // The refresh is shared; it once ran on the first caller's signal, whose deadline slides while
    // its client trickles, so a scan that joined it waited as long (and ignored its own abort).
    let asked = 0;
    const u = await upstream({ options: () => (++asked === 1 ? optionsAnswer({ 'Options-TTL': '1' }) : 'hang') });
    const b = await backendFor([u.url()], { timeout_ms: 1_000 });
    await sleep(1_100); // Options-TTL runs out
    const trickling = b.openStream!(META, signal()); // starts the refresh, which never gets an answer
    await sleep(50);
    const started = Date.now();
    const aborted = new AbortController();
    const joined = b.scan(spooledBodyFromBuffer(body(20)), META, aborted.signal).then((r) => ({ r, ms: Date.now() - started }));
    const deadlineOnly = b.scan(spooledBodyFromBuffer(body(20)), META, signal()).then((r) => ({ r, ms: Date.now() - started }));
    setTimeout(() => aborted.abort(new Error('client gone')), 300);
    for (let i = 0; i < 8; i++) {
      trickling.write(body(10)); // progress every 250 ms: its own deadline never runs out
      await sleep(250);
    }
    const [a, d] = await Promise.all([joined, deadlineOnly]);
    expect(a.r.outcome).toBe('error');
    expect(a.ms).toBeLessThan(900);
    expect(d.r).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(d.ms).toBeLessThan(1_800);
    // The shared fetch has a deadline of its own (timeout_ms): the trickling scan is not held for ever either.
    expect(await trickling.end()).toMatchObject({ outcome: 'error' });
  });

  it('an answer with another ISTag makes the next scan ask OPTIONS again', async () => {
    const u = await upstream({ final: () => NO_CONTENT.replace('"FAKE-1"', '"FAKE-9"') });
    const b = await backendFor([u.url()]);
    await b.scan(spooledBodyFromBuffer(body(20)), META, signal());
    await b.scan(spooledBodyFromBuffer(body(20)), META, signal());
    expect(optionsRequests(u)).toHaveLength(2);
  });

  it('an upstream down at start leaves the version unavailable and the endpoint unhealthy', async () => {
    const closed = await closedPort();
    const b = await backendFor([`icap://127.0.0.1:${closed}/avscan`]);
    expect(b.version).toBe(VERSION_UNAVAILABLE);
    expect(b.status()[0]!.healthy).toBe(false);
    expect(await b.scan(spooledBodyFromBuffer(body(20)), META, signal())).toMatchObject({ outcome: 'error', kind: 'unreachable' });
  });

  it('a 404 to OPTIONS (wrong service path) marks the endpoint down and is a backend-error', async () => {
    const bad = await upstream({ options: () => 'ICAP/1.0 404 ICAP Service Not Found\r\n\r\n' });
    const good = await upstream();
    const both = await backendFor([bad.url('nope'), good.url()]);
    expect(both.status().map((s) => s.healthy)).toEqual([false, true]);
    for (let i = 0; i < 3; i++) expect(await both.scan(spooledBodyFromBuffer(body(20)), META, signal())).toMatchObject({ outcome: 'clean', endpoint: good.url() });
    const alone = await backendFor([bad.url('nope')]);
    const failed = await alone.scan(spooledBodyFromBuffer(body(20)), META, signal());
    expect(failed).toMatchObject({ outcome: 'error', kind: 'backend-error', endpoint: bad.url('nope') });
    expect(failed.outcome === 'error' && failed.message).toContain('wrong service path');
    expect(scanRequests(bad)).toHaveLength(0);
  });
});

describe('preview and 100 Continue', () => {
  it('a body that fits the preview goes with ieof and no 100 is awaited', async () => {
    const u = await upstream();
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(body(10)), META, signal())).toMatchObject({ outcome: 'clean' });
    expect(scanRequests(u)[0]).toMatchObject({ previewBytes: 10, ieof: true, continued: false });
    expect(scanRequests(u)[0]!.body.length).toBe(10);
  });

  it('a final answer to the preview ends the exchange: nothing more is sent (spooled and streamed)', async () => {
    const u = await upstream({ preview: () => INFECTED });
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(body(5_000)), META, signal())).toMatchObject({ outcome: 'infected', threats: ['Fake.Virus'] });
    const streamed = await feed(b.openStream!(META, signal()), [body(4), body(4), body(4), body(5_000)]);
    expect(streamed).toMatchObject({ outcome: 'infected', threats: ['Fake.Virus'] });
    for (const req of scanRequests(u)) expect(req.body.length).toBe(10);
    // The request was complete (§4.5), so the connection was kept: one for everything.
    expect(u.connections()).toBe(1);
  });

  it('204 to the preview is clean', async () => {
    const u = await upstream({ preview: () => NO_CONTENT });
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(body(500)), META, signal())).toMatchObject({ outcome: 'clean' });
  });

  it('preview_bytes lowers the preview, never raises it; no Preview in OPTIONS means no preview', async () => {
    const u = await upstream();
    const lower = await backendFor([u.url()], { preview_bytes: 4 });
    await lower.scan(spooledBodyFromBuffer(body(50)), META, signal());
    const higher = await backendFor([u.url()], { preview_bytes: 4096 });
    await higher.scan(spooledBodyFromBuffer(body(50)), META, signal());
    expect(scanRequests(u).map((r) => r.previewBytes)).toEqual([4, 10]);

    const none = await upstream({ options: () => optionsAnswer({ Preview: '' }) });
    const b = await backendFor([none.url()], { preview_bytes: 4 });
    expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject({ outcome: 'clean' });
    expect(scanRequests(none)[0]).toMatchObject({ previewBytes: null, complete: true });
    expect(scanRequests(none)[0]!.raw).not.toContain('Preview');
  });

  it('Transfer-Complete sends the whole body without preview; Transfer-Ignore sends nothing and is no verdict', async () => {
    const u = await upstream({ options: () => optionsAnswer({ 'Transfer-Complete': 'exe', 'Transfer-Ignore': 'gif' }) });
    const b = await backendFor([u.url()]);
    await b.scan(spooledBodyFromBuffer(body(50)), { ...META, url: 'http://example.com/setup.EXE' }, signal());
    expect(scanRequests(u)[0]).toMatchObject({ previewBytes: null });
    const ignored = await b.scan(spooledBodyFromBuffer(body(50)), { ...META, url: 'http://example.com/a.gif' }, signal());
    expect(ignored).toMatchObject({ outcome: 'error', kind: 'unsupported' });
    expect(scanRequests(u)).toHaveLength(1);
  });

  it('a method the service does not offer is unsupported and not sent', async () => {
    const u = await upstream({ options: () => optionsAnswer({ Methods: 'RESPMOD' }) });
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(body(20)), { ...META, method: 'REQMOD' }, signal())).toMatchObject({ outcome: 'error', kind: 'unsupported' });
    expect(scanRequests(u)).toHaveLength(0);
  });
});

describe('answers', () => {
  it.each([
    ['X-Infection-Found', blockAnswer('X-Infection-Found: Type=0; Resolution=2; Threat=Fake.Virus;\r\n'), { outcome: 'infected', threats: ['Fake.Virus'] }],
    ['X-Virus-ID', blockAnswer('X-Virus-ID: Fake Virus ID\r\n'), { outcome: 'infected', threats: ['Fake Virus ID'] }],
    ['X-Violations-Found', blockAnswer('X-Violations-Found: 1\r\n\tfile.bin\r\n\tFake.Violation\r\n\t1\r\n\t2\r\n', 201), { outcome: 'infected', threats: ['Fake.Violation'] }],
    ['a 403 page without headers', blockAnswer(''), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['503', 'ICAP/1.0 503 Service Overloaded\r\n\r\n', { outcome: 'error', kind: 'overloaded' }],
    ['500', 'ICAP/1.0 500 Server Error\r\n\r\n', { outcome: 'error', kind: 'backend-error' }],
    ['405', 'ICAP/1.0 405 Method Not Allowed For Service\r\nEncapsulated: null-body=0\r\n\r\n', { outcome: 'error', kind: 'backend-error' }],
  ])('%s', async (_name, final, expected) => {
    const u = await upstream({ final: () => final });
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject(expected);
  });

  it('a 200 echoing what was sent is clean; an altered body is not', async () => {
    const data = body(3_000);
    let echo = data;
    const u = await upstream({ final: (req) => echoAnswer(req.httpHeads[1]!, echo) });
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(data), META, signal())).toMatchObject({ outcome: 'clean' });
    echo = Buffer.concat([data.subarray(0, 100), Buffer.from('CLEANED')]);
    expect(await b.scan(spooledBodyFromBuffer(data), META, signal())).toMatchObject({ outcome: 'infected', threats: [UPSTREAM_BLOCKED] });
  });

  it('an answer before the body is sent (errata e7) is read; the connection is then closed', async () => {
    const u = await upstream({ options: () => optionsAnswer({ Preview: '' }), onHead: () => INFECTED });
    const b = await backendFor([u.url()]);
    // Bigger than any loopback socket buffer: the upstream stops reading, so our send is cut short.
    expect(await b.scan(spooledBodyFromBuffer(body(16_000_000)), META, signal())).toMatchObject({ outcome: 'infected', threats: ['Fake.Virus'] });
    expect(await b.scan(spooledBodyFromBuffer(body(10)), META, signal())).toMatchObject({ outcome: 'infected' });
    // OPTIONS + first scan on connection 1 (closed after the early answer), the second on a new one.
    expect(scanRequests(u).map((r) => r.connection)).toEqual([1, 2]);
  });

  it('a 200 that starts while the body still goes out (c-icap virus_scan, errata e7) gets the whole body and is read to its end', async () => {
    // The send used to stop at any early final head, complete or not: here the upstream then
    // waited for the last chunk, and every such scan ran into timeout_ms.
    const u = await upstream({ echoWhileReading: true });
    const b = await backendFor([u.url()], { timeout_ms: 3_000 });
    // Spooled, far bigger than a socket buffer: the head comes back right after the 100 Continue.
    expect(await b.scan(spooledBodyFromBuffer(body(3_000_000)), META, signal())).toMatchObject({ outcome: 'clean' });
    // Streamed in pieces with pauses, as a download arrives: the head comes long before the end.
    const stream = b.openStream!(META, signal());
    const parts = [body(20_000), body(1), body(70_000)];
    for (const part of parts) {
      if (!stream.write(part)) await new Promise<void>((resolve) => stream.onDrain(resolve));
      await sleep(30);
    }
    expect(await stream.end()).toMatchObject({ outcome: 'clean' });
    expect(scanRequests(u).map((r) => [r.previewBytes, r.continued, r.complete, r.body.length])).toEqual([
      [10, true, true, 3_000_000],
      [10, true, true, 90_001],
    ]);
    // Request and answer both ended: the connection stays in use (OPTIONS and both scans on one).
    expect(u.connections()).toBe(1);
  });

  it('the same without a preview: the 200 starts with the request head', async () => {
    const u = await upstream({ options: () => optionsAnswer({ Preview: '' }), echoWhileReading: true });
    const b = await backendFor([u.url()], { timeout_ms: 3_000 });
    const stream = b.openStream!(META, signal());
    for (const part of [body(20_000), body(70_000)]) {
      if (!stream.write(part)) await new Promise<void>((resolve) => stream.onDrain(resolve));
      await sleep(30);
    }
    expect(await stream.end()).toMatchObject({ outcome: 'clean' });
    expect(scanRequests(u).map((r) => [r.previewBytes, r.complete, r.body.length])).toEqual([[null, true, 90_000]]);
  });
});

describe('connections', () => {
  it('are reused: OPTIONS and ten scans on one connection', async () => {
    const u = await upstream({ preview: (req) => (req.body.length === 10 && req.continued === false ? 'continue' : NO_CONTENT) });
    const b = await backendFor([u.url()]);
    for (let i = 0; i < 10; i++) expect((await b.scan(spooledBodyFromBuffer(body(i % 2 === 0 ? 5 : 500)), META, signal())).outcome).toBe('clean');
    expect(u.connections()).toBe(1);
    expect(b.connectionStats()[u.url()]).toEqual({ opened: 1, idle: 1, active: 0 });
  });

  it('an idle connection the server closed is replaced without failing the scan', async () => {
    const u = await upstream();
    const b = await backendFor([u.url()]);
    for (const s of u.sockets) s.end();
    await sleep(50);
    expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject({ outcome: 'clean' });
    expect(u.connections()).toBe(2);
  });

  it('a reused connection reset before any answer byte is retried once on a fresh one (keep-alive race)', async () => {
    const u = await upstream({ onHead: (req) => (req.connection === 1 ? 'reset' : null) });
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject({ outcome: 'clean', endpoint: u.url() });
    expect(scanRequests(u).map((r) => r.connection)).toEqual([1, 2]);
  });

  it('Connection: close in an answer is honoured', async () => {
    const u = await upstream({ final: () => NO_CONTENT.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n') });
    const b = await backendFor([u.url()]);
    await b.scan(spooledBodyFromBuffer(body(50)), META, signal());
    await b.scan(spooledBodyFromBuffer(body(50)), META, signal());
    expect(scanRequests(u).map((r) => r.connection)).toEqual([1, 2]);
  });

  it('a connection killed mid-answer is an error, never clean, and is not reused', async () => {
    const half = blockAnswer('X-Infection-Found: Type=0; Resolution=2; Threat=Fake.Virus;\r\n');
    for (const partial of ['ICAP/1.0 20', 'ICAP/1.0 204 No Content\r\nISTag: "x"\r\n', half.slice(0, half.length - 9)]) {
      const u = await upstream({ final: () => ({ partial }) });
      const b = await backendFor([u.url()]);
      const result = await b.scan(spooledBodyFromBuffer(body(50)), META, signal());
      expect(result, JSON.stringify(partial)).toMatchObject({ outcome: 'error', kind: 'backend-error' });
      expect(b.connectionStats()[u.url()]!.idle).toBe(0);
    }
  });

  it('garbage instead of an answer is an error', async () => {
    const u = await upstream({ final: () => 'HTTP/1.1 200 OK\r\n\r\n' });
    const b = await backendFor([u.url()]);
    expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject({ outcome: 'error', kind: 'backend-error' });
  });

  it('Max-Connections caps the connections in use: a scan beyond it is overloaded', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const u = await upstream({ options: () => optionsAnswer({ 'Max-Connections': '1' }), preview: async () => (await held, NO_CONTENT) });
    const b = await backendFor([u.url()]);
    const first = b.scan(spooledBodyFromBuffer(body(50)), META, signal());
    await sleep(50);
    expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject({ outcome: 'error', kind: 'overloaded' });
    release();
    expect(await first).toMatchObject({ outcome: 'clean' });
  });
});

describe('failover', () => {
  it('503 → the same body retried on the second endpoint', async () => {
    const busy = await upstream({ preview: () => 'ICAP/1.0 503 Service Overloaded\r\nISTag: "FAKE-1"\r\n\r\n' });
    const ok = await upstream({ preview: () => INFECTED });
    const b = await backendFor([busy.url(), ok.url()]);
    const result = await b.scan(spooledBodyFromBuffer(body(500)), META, signal());
    expect(result).toMatchObject({ outcome: 'infected', threats: ['Fake.Virus'], endpoint: ok.url() });
    expect(scanRequests(busy)).toHaveLength(1);
    expect(scanRequests(ok)[0]!.body.equals(body(10))).toBe(true);
  });

  it('503 after the preview of a streamed body: retried elsewhere from the first byte', async () => {
    const busy = await upstream({ preview: () => 'ICAP/1.0 503 Service Overloaded\r\n\r\n' });
    const ok = await upstream();
    const b = await backendFor([busy.url(), ok.url()]);
    const data = body(50_000);
    const parts = [data.subarray(0, 7), data.subarray(7, 30_000), data.subarray(30_000)];
    expect(await feed(b.openStream!(META, signal()), parts)).toMatchObject({ outcome: 'clean', endpoint: ok.url() });
    expect(sha(scanRequests(ok)[0]!.body)).toBe(sha(data));
  });

  it('connection refused → unreachable, retried once on another endpoint', async () => {
    const closed = await closedPort();
    const ok = await upstream();
    const b = await backendFor([`icap://127.0.0.1:${closed}/avscan`, ok.url()], { health_interval_ms: 600_000 });
    // The down endpoint is unhealthy after the start check; fallbackToUnhealthy only when none is up.
    for (let i = 0; i < 3; i++) expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject({ outcome: 'clean', endpoint: ok.url() });
    const both = await backendFor([`icap://127.0.0.1:${closed}/avscan`, `icap://127.0.0.1:${await closedPort()}/avscan`]);
    const result = await both.scan(spooledBodyFromBuffer(body(50)), META, signal());
    expect(result).toMatchObject({ outcome: 'error', kind: 'unreachable' });
    expect(result.outcome === 'error' && result.message).toContain('ECONNREFUSED');
  });

  it('400/404/405/500 are not retried elsewhere', async () => {
    for (const status of ['400 Bad Request', '404 ICAP Service Not Found', '405 Method Not Allowed For Service', '500 Server Error']) {
      const first = await upstream({ preview: () => `ICAP/1.0 ${status}\r\n\r\n` });
      const second = await upstream({ preview: () => `ICAP/1.0 ${status}\r\n\r\n` });
      const b = await backendFor([first.url(), second.url()]);
      expect(await b.scan(spooledBodyFromBuffer(body(50)), META, signal())).toMatchObject({ outcome: 'error', kind: 'backend-error' });
      expect(scanRequests(first).length + scanRequests(second).length, status).toBe(1);
    }
  });
});

describe('limits and time', () => {
  it('timeout_ms bounds the whole scan: a silent upstream is a timeout', async () => {
    const u = await upstream({ preview: () => 'hang' });
    const b = await backendFor([u.url()], { timeout_ms: 300 });
    const result = await b.scan(spooledBodyFromBuffer(body(50)), META, signal());
    expect(result).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(b.connectionStats()[u.url()]).toMatchObject({ idle: 0, active: 0 });
  });

  it('a streamed body that keeps coming is not cut by timeout_ms; a stall is', async () => {
    const u = await upstream();
    const b = await backendFor([u.url()], { timeout_ms: 800 });
    const stream = b.openStream!(META, signal());
    // 1.2 s of body in all (longer than timeout_ms), but never long without progress.
    for (let i = 0; i < 12; i++) {
      stream.write(body(1_000));
      await sleep(100);
    }
    expect(await stream.end()).toMatchObject({ outcome: 'clean' });
    const stalled = b.openStream!(META, signal());
    stalled.write(body(1_000));
    await sleep(1_200);
    expect(await stalled.end()).toMatchObject({ outcome: 'error', kind: 'timeout' });
  });

  it('max_body_bytes: too-large, nothing sent (spooled, and streamed with Content-Length or without)', async () => {
    const u = await upstream();
    const b = await backendFor([u.url()], { max_body_bytes: 100 });
    expect(await b.scan(spooledBodyFromBuffer(body(101)), META, signal())).toMatchObject({ outcome: 'error', kind: 'too-large' });
    const withLength: ScanMeta = { ...META, httpHeads: { response: Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n') } };
    const declared = b.openStream!(withLength, signal());
    expect(declared.write(body(50))).toBe(true);
    expect(await declared.end()).toMatchObject({ outcome: 'error', kind: 'too-large' });
    expect(scanRequests(u)).toHaveLength(0);
    expect(await feed(b.openStream!(META, signal()), [body(60), body(60)])).toMatchObject({ outcome: 'error', kind: 'too-large' });
    expect(await b.scan(spooledBodyFromBuffer(body(100)), META, signal())).toMatchObject({ outcome: 'clean' });
  });

  it('the caller aborting a stream releases the connection and never reports clean', async () => {
    const u = await upstream({ preview: () => 'hang' });
    const b = await backendFor([u.url()]);
    const controller = new AbortController();
    const stream = b.openStream!(META, controller.signal);
    stream.write(body(500));
    await sleep(50);
    controller.abort(new Error('client gone'));
    expect(await stream.end()).toMatchObject({ outcome: 'error' });
    expect(b.connectionStats()[u.url()]).toMatchObject({ active: 0, idle: 0 });
  });
});

describe('streaming', () => {
  it('backpressure: write() says wait while the upstream holds the preview, drains after 100 Continue', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const u = await upstream({ preview: async () => (await held, 'continue') });
    const b = await backendFor([u.url()]);
    const stream = b.openStream!(META, signal());
    const piece = body(16 * 1024);
    const sent: Buffer[] = [];
    // Write until write() says wait and no drain comes: the stream holds what the upstream has not taken.
    let stuck = false;
    for (let i = 0; i < 64 && !stuck; i++) {
      sent.push(piece);
      if (!stream.write(piece)) stuck = !(await drainWithin(stream, 200));
    }
    expect(stuck).toBe(true);
    // Held back at about the high-water mark (64 KiB unsent, plus the preview read), not the whole body.
    expect(sent.length * piece.length).toBeLessThanOrEqual(128 * 1024);
    const drained = drainWithin(stream, 2_000);
    release();
    expect(await drained).toBe(true);
    const tail = body(300_000);
    sent.push(tail);
    expect(await feed(stream, [tail])).toMatchObject({ outcome: 'clean' });
    expect(sha(scanRequests(u)[0]!.body)).toBe(sha(Buffer.concat(sent)));
  });

  it('a verdict on the preview ends the stream early; later writes are dropped at once', async () => {
    const u = await upstream({ preview: () => INFECTED });
    const b = await backendFor([u.url()]);
    const stream = b.openStream!(META, signal());
    stream.write(body(100));
    await sleep(50);
    for (let i = 0; i < 50; i++) expect(stream.write(body(64 * 1024))).toBe(true);
    expect(await stream.end()).toMatchObject({ outcome: 'infected', threats: ['Fake.Virus'] });
  });
});

describe('encapsulated HTTP heads', () => {
  it('forwards the real heads byte for byte', async () => {
    const u = await upstream();
    const b = await backendFor([u.url()]);
    const request = Buffer.from('GET http://example.com/x.zip HTTP/1.1\r\nHost: example.com\r\nX-Odd:  spaced \r\n\r\n');
    const response = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: 50\r\n\r\n');
    await b.scan(spooledBodyFromBuffer(body(50)), { ...META, httpHeads: { request, response } }, signal());
    expect(scanRequests(u)[0]!.httpHeads).toEqual([request.toString('latin1'), response.toString('latin1')]);
    await b.scan(spooledBodyFromBuffer(body(50)), { ...META, method: 'REQMOD', httpHeads: { request } }, signal());
    const reqmod = scanRequests(u)[1]!;
    expect(reqmod.raw).toMatch(/^REQMOD .*Encapsulated: req-hdr=0, req-body=\d+\r\n/s);
    expect(reqmod.httpHeads).toEqual([request.toString('latin1')]);
  });

  it('makes minimal heads from ScanMeta when the real ones are missing', async () => {
    const u = await upstream();
    const b = await backendFor([u.url()]);
    await b.scan(spooledBodyFromBuffer(body(50)), META, signal());
    await b.scan(spooledBodyFromBuffer(body(50)), { transactionId: 't', method: 'REQMOD', clientAddress: '127.0.0.1' }, signal());
    expect(scanRequests(u)[0]!.httpHeads).toEqual([
      'GET http://example.com/file.bin HTTP/1.1\r\nHost: example.com\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n',
    ]);
    expect(scanRequests(u)[1]!.httpHeads).toEqual(['POST / HTTP/1.1\r\nHost: localhost\r\n\r\n']);
  });
});

describe('icaps (TLS)', () => {
  it('scans over TLS with the configured CA; refuses an unknown CA unless told not to verify', async () => {
    const certs = makeTestCerts();
    try {
      const u = await upstream({ preview: () => INFECTED }, { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) });
      expect(u.url()).toMatch(/^icaps:/);
      const trusted = await backendFor([u.url()], { tls: { ca_file: certs.caCert, reject_unauthorized: true } });
      expect(trusted.version).toBe('icap "FAKE-1"');
      expect(await trusted.scan(spooledBodyFromBuffer(body(500)), META, signal())).toMatchObject({ outcome: 'infected', threats: ['Fake.Virus'] });
      const strict = await backendFor([u.url()]);
      const refused = await strict.scan(spooledBodyFromBuffer(body(500)), META, signal());
      expect(refused).toMatchObject({ outcome: 'error', kind: 'unreachable' });
      expect(refused.outcome === 'error' && refused.message).toMatch(/certificate/i);
      const lax = await backendFor([u.url()], { tls: { ca_file: '', reject_unauthorized: false } });
      expect(await lax.scan(spooledBodyFromBuffer(body(5)), META, signal())).toMatchObject({ outcome: 'clean' });
    } finally {
      rmSync(certs.dir, { recursive: true, force: true });
    }
  });
});

/** Whether onDrain fires within `ms`. */
function drainWithin(stream: StreamingScan, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    stream.onDrain(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
