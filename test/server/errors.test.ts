/**
 * Every error path answers with its ICAP status and closes (RFC 3507 §4.3.3), and never takes the
 * server down: after each case a fresh connection still gets OPTIONS answered.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { BodySpool, liveSpoolFiles } from '../../src/pipeline/spool.js';
import { buildRequest, EICAR } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const SMALL_LIMITS = `server:
  listen: [{ host: 127.0.0.1, port: 0 }]
  max_connections: 3
  timeouts: { header_ms: 300, body_idle_ms: 300, keep_alive_ms: 300 }
  limits: { icap_header_bytes: 1024, http_header_bytes: 1024, header_count: 16 }
`;

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer(SMALL_LIMITS);
});
afterAll(() => srv.close());

async function stillServing(): Promise<void> {
  const c = await TestClient.connect(srv.port);
  c.write(buildRequest({ method: 'OPTIONS' }).first);
  expect((await c.read()).status).toBe(200);
  c.close();
}

async function expectErrorAndClose(bytes: Buffer, status: number): Promise<void> {
  const c = await TestClient.connect(srv.port);
  c.write(bytes);
  const r = await c.read();
  expect(r.status).toBe(status);
  expect(r.header('Connection')).toBe('close');
  expect(r.header('ISTag')).toMatch(/^".+"$/);
  await c.waitClosed();
  await stillServing();
}

describe('error answers', () => {
  it.each([
    ['malformed request line', b('HELLO THERE\r\n\r\n'), 400],
    ['malformed header', b('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nno colon here\r\n\r\n'), 400],
    ['bad Encapsulated', b('RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nEncapsulated: res-body=0, req-hdr=5\r\n\r\n'), 400],
    ['unknown service', buildRequest({ method: 'OPTIONS', service: 'nope' }).first, 404],
    ['method not allowed for the service', buildRequest({ method: 'REQMOD', service: 'respmod' }).first, 405],
    ['unknown method', b('PATCH icap://127.0.0.1/respmod ICAP/1.0\r\nHost: x\r\n\r\n'), 501],
    ['version other than ICAP/1.0', b('OPTIONS icap://127.0.0.1/respmod ICAP/2.0\r\nHost: x\r\n\r\n'), 505],
    ['ICAP header block over the limit', b(`OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`), 400],
    ['too many headers', b(`OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\n${'X-A: 1\r\n'.repeat(20)}\r\n`), 400],
    ['HTTP header block over the limit', buildRequest({ reqHdr: `GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`, body: ['x'] }).first, 400],
    ['bad chunk framing', Buffer.concat([buildRequest({ body: ['abc'] }).first.subarray(0, -8), b('zz\r\n')]), 400],
  ])('%s → %i and close', async (_name, bytes, status) => {
    await expectErrorAndClose(bytes, status);
  });

  it('a protocol error mid-body frees the spool and logs the transaction as aborted', async () => {
    const c = await TestClient.connect(srv.port);
    const head = buildRequest({ body: ['x'] }).first;
    const headOnly = head.subarray(0, head.indexOf('\r\n\r\n', head.indexOf('res-hdr') > 0 ? head.indexOf('HTTP/1.1 200') : 0) + 4);
    const record = srv.nextRecord();
    c.write(headOnly, b('2000\r\n'), Buffer.alloc(0x2000, 'a'), b('\r\nnot-hex\r\n'));
    expect((await c.read()).status).toBe(400);
    expect(await record).toMatchObject({ verdict: 'aborted', reason: 'protocol-error' });
    await c.waitClosed();
    expect([...liveSpoolFiles()].filter((f) => f.startsWith(srv.spoolDir))).toEqual([]);
  });
});

describe('Max-Connections', () => {
  it('answers 503 past the limit and serves again once a connection closes', async () => {
    const held = await Promise.all([0, 1, 2].map(() => TestClient.connect(srv.port)));
    for (const c of held) c.write(b('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\n')); // keep them busy in the head phase
    await new Promise((r) => setTimeout(r, 50));
    const extra = await TestClient.connect(srv.port);
    const r = await extra.read();
    expect(r.status).toBe(503);
    await extra.waitClosed();
    for (const c of held) c.close();
    await new Promise((r) => setTimeout(r, 50));
    await stillServing();
  });
});

describe('timeouts', () => {
  it('header timeout: an incomplete head gets 408 and the connection closes', async () => {
    const c = await TestClient.connect(srv.port);
    c.write(b('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nHost: x\r\n'));
    const started = Date.now();
    expect((await c.read(3000)).status).toBe(408);
    await c.waitClosed(3000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('header timeout also applies to a connection that never sends anything', async () => {
    const c = await TestClient.connect(srv.port);
    expect((await c.read(3000)).status).toBe(408);
    await c.waitClosed(3000);
  });

  it('body idle timeout: a stalled body aborts the transaction, frees the spool and closes', async () => {
    const c = await TestClient.connect(srv.port);
    // Allow: 204, so "commit on idle" (which answers a silent RESPMOD early) stays out of the way.
    const req = buildRequest({ body: [Buffer.alloc(2 * 1024 * 1024, 'z')], headers: [['Allow', '204']] });
    const record = srv.nextRecord();
    c.write(req.first.subarray(0, req.first.length - 100)); // most of the body, then silence
    expect((await c.read(3000)).status).toBe(408);
    await c.waitClosed(3000);
    expect(await record).toMatchObject({ verdict: 'aborted', reason: 'body-timeout' });
    expect([...liveSpoolFiles()].filter((f) => f.startsWith(srv.spoolDir))).toEqual([]);
  });

  it('keep-alive timeout: an idle connection between requests is closed quietly', async () => {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    expect((await c.read()).status).toBe(200);
    await c.waitClosed(3000);
    expect(c.pending.length).toBe(0);
  });
});

/**
 * The connection keeps one timer and moves deadlines lazily (connection.ts #armTimer): a timer
 * armed for a later deadline must give way when the next phase's deadline is earlier.
 */
describe('an error in the second request of a connection', () => {
  it('a malformed head after an answered request gets its own 400, not a silent close', async () => {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    expect((await c.read()).status).toBe(200);
    c.write(b('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nno colon here\r\n\r\n'));
    const r = await c.read(3000);
    expect(r.status).toBe(400);
    expect(r.header('Connection')).toBe('close');
    await c.waitClosed(3000);
  });
});

describe('timeouts of unequal length', () => {
  async function withServer(timeouts: string, run: (port: number) => Promise<void>): Promise<void> {
    const server = await startTestServer(`server:
  listen: [{ host: 127.0.0.1, port: 0 }]
  timeouts: ${timeouts}
`);
    try {
      await run(server.port);
    } finally {
      await server.close();
    }
  }

  it('a short keep-alive after a long header timeout closes the idle connection on time', async () => {
    await withServer('{ header_ms: 5000, keep_alive_ms: 300 }', async (port) => {
      const c = await TestClient.connect(port);
      c.write(buildRequest({ method: 'OPTIONS' }).first);
      expect((await c.read()).status).toBe(200);
      const answered = Date.now();
      await c.waitClosed(3000);
      expect(Date.now() - answered).toBeGreaterThanOrEqual(250);
      expect(Date.now() - answered).toBeLessThan(2000);
    });
  });

  it('a short header timeout after a long keep-alive answers 408 on time', async () => {
    await withServer('{ header_ms: 300, keep_alive_ms: 5000 }', async (port) => {
      const c = await TestClient.connect(port);
      c.write(buildRequest({ method: 'OPTIONS' }).first);
      expect((await c.read()).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 100)); // idle: the keep-alive timer is armed
      c.write(b('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nHost: x\r\n'));
      const started = Date.now();
      expect((await c.read(3000)).status).toBe(408);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(Date.now() - started).toBeLessThan(2000);
      await c.waitClosed(3000);
    });
  });
});

describe('client disconnects', () => {
  it('mid-body: the transaction is aborted, temp file removed, logged as aborted (never clean)', async () => {
    const c = await TestClient.connect(srv.port);
    const req = buildRequest({ body: [Buffer.alloc(3 * 1024 * 1024, 'q'), EICAR] });
    const record = srv.nextRecord();
    c.write(req.first.subarray(0, 2 * 1024 * 1024));
    await new Promise((r) => setTimeout(r, 100));
    expect([...liveSpoolFiles()].some((f) => f.startsWith(srv.spoolDir))).toBe(true);
    c.close();
    expect(await record).toMatchObject({ verdict: 'aborted', reason: 'client-disconnected', icap_status: 0 });
    await new Promise((r) => setTimeout(r, 50));
    expect([...liveSpoolFiles()].filter((f) => f.startsWith(srv.spoolDir))).toEqual([]);
  });

  it('while the answer waits for the spool to end: aborted, never an internal error (the abort disposes the spool under it)', async () => {
    // Found by the Squid soak with clamd behind: Squid hung up while the temp file was being
    // closed (spool end()). That window is a fraction of a millisecond; here end() is held for
    // 300 ms so the hang-up always lands inside it.
    const realEnd = BodySpool.prototype.end;
    const held = vi.spyOn(BodySpool.prototype, 'end').mockImplementation(function (this: BodySpool) {
      return new Promise<void>((r) => setTimeout(r, 300)).then(() => realEnd.call(this));
    });
    try {
      const c = await TestClient.connect(srv.port);
      const record = srv.nextRecord();
      c.write(buildRequest({ body: [Buffer.alloc(3 * 1024 * 1024, 'q')], headers: [['Allow', '204']] }).first);
      await waitFor('the answer to wait for the spool', () => held.mock.calls.length > 0);
      // A reset, as when a write to a peer already gone fails: the connection closes at once (a
      // FIN alone is a half-close, and the answer would still be written).
      c.socket.resetAndDestroy();
      expect(await record).toMatchObject({ verdict: 'aborted', reason: 'client-disconnected' });
      await new Promise((r) => setTimeout(r, 400)); // the held end() rejects now
      expect(srv.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
      expect([...liveSpoolFiles()].filter((f) => f.startsWith(srv.spoolDir))).toEqual([]);
    } finally {
      held.mockRestore();
    }
  });
});

/**
 * A body its temp file cannot hold (the spool directory gone here; a full disk or a file size
 * limit in test/integration/spool-failure.test.ts) is answered 500 as soon as the file fails (RFC
 * 3507 §4.3.3 names "out of disk space"), never left waiting for a 'drain' that cannot come.
 */
describe('a spool that cannot store the body', () => {
  // Long timeouts, so that only the spool's failure can end the transaction in time.
  const PATIENT = `server:
  listen: [{ host: 127.0.0.1, port: 0 }]
  timeouts: { body_idle_ms: 60000 }
`;

  it.each([
    // Large: the writes wait for the file, which fails to open (the wait must end).
    ['a 3 MiB body, sent at once', 3 * 1024 * 1024, 'spool:\n  memory_bytes: 1048576\n'],
    // Small: the writes never wait; the body is complete when end() finds the failure.
    ['a 2,000-byte body over a 1,000-byte memory_bytes', 2000, 'spool:\n  memory_bytes: 1000\n'],
  ])('%s: 500 at once and close, logged as spool-error, the server still serving', async (_name, bytes, spoolYaml) => {
    const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-test-'));
    const t = await startTestServer(`${PATIENT}${spoolYaml}  directory: ${dir}\n`);
    try {
      rmSync(dir, { recursive: true });
      const c = await TestClient.connect(t.port);
      const record = t.nextRecord();
      c.write(buildRequest({ body: [Buffer.alloc(bytes, 's')], headers: [['Allow', '204']] }).first);
      const r = await c.read(5000);
      expect(r.status).toBe(500);
      expect(r.header('Connection')).toBe('close');
      await c.waitClosed(3000);
      expect(await record).toMatchObject({ verdict: 'error', reason: 'spool-error', icap_status: 500, bytes_out: r.length });
      const errors = t.logs.filter((l) => (l.level as number) >= 50);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: 'ICAP_ERR_SPOOL_IO', msg: 'spool failed: the body could not be stored, answered 500' });
      expect(JSON.stringify(errors[0]!.err)).toContain('ENOENT');
      expect([...liveSpoolFiles()].filter((f) => f.startsWith(t.spoolDir))).toEqual([]);
      const next = await TestClient.connect(t.port);
      next.write(buildRequest({ body: ['small'], headers: [['Allow', '204']] }).first);
      expect((await next.read()).status).toBe(204);
      next.close();
    } finally {
      await t.close();
    }
  });
});

describe('engine failures follow the service policy', () => {
  function failingBackend(kind: 'timeout' | 'backend-error'): Backend {
    return {
      name: 'builtin',
      version: 'fake/1',
      scan: async () => ({ outcome: 'error', backend: 'builtin', kind, message: 'simulated', durationMs: 1 }),
      status: () => [{ endpoint: 'fake', healthy: true, inFlight: 0, queued: 0 }],
      close: async () => {},
    };
  }

  it.each([
    ['block', 200, 'block; reason=error-policy; errors=builtin:timeout', 'error-blocked'],
    ['allow', 204, 'allow; reason=error-policy; errors=builtin:timeout', 'error-allowed'],
  ])('on_error: %s', async (policy, status, header, verdict) => {
    const yaml = `services:\n  respmod:\n    methods: [RESPMOD]\n    on_error: ${policy}\n`;
    const s = await startTestServer(yaml, { backends: new Map([['builtin', failingBackend('timeout')]]) });
    try {
      const c = await TestClient.connect(s.port);
      c.write(buildRequest({ body: ['data'], headers: [['Allow', '204']] }).first);
      const r = await c.read();
      expect(r.status).toBe(status);
      expect(r.header('X-ICAP-Bridge-Decision')).toBe(header);
      if (policy === 'block') expect(r.resHdr).toMatch(/^HTTP\/1\.1 403/);
      expect(s.records.at(-1)).toMatchObject({ verdict, scan_errors: ['builtin:timeout'] });
      c.close();
    } finally {
      await s.close();
    }
  });
});
