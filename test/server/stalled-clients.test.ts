/**
 * Clients that stop taking part without closing must not hold the server's resources for ever:
 *
 * - one that stops reading an answer (server.timeouts.write_idle_ms, ResponseSink's SendWatch):
 *   the transaction is aborted as `send-timeout`, its temp file freed, the connection closed, and
 *   a warning logged; a reader that is slow but keeps taking the answer is not cut;
 * - one that ignores the FIN we send after keep_alive_ms (connection.ts #endAndLinger): the
 *   socket is destroyed shortly after, so its max_connections slot comes back.
 *
 * Both held the connection (and the first a temp file of the whole body) until the client went
 * away, which a hung client never does.
 */
import { connect, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRequest, httpResponseHead, respmodHead } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
let srv: TestServer | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await srv?.close();
  srv = null;
});

async function serverWith(timeouts: string, extra = ''): Promise<TestServer> {
  srv = await startTestServer(`server:
  listen: [{ host: 127.0.0.1, port: 0 }]
  timeouts: ${timeouts}
${extra}`);
  return srv;
}

function rawConnect(port: number, allowHalfOpen = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen }, () => resolve(s));
    s.once('error', reject);
    s.on('error', () => {});
    sockets.push(s);
  });
}

/** A clean RESPMOD of `bytes` without Allow: 204, so the answer echoes the whole body back. */
async function sendEchoRequest(s: Socket, bytes: number): Promise<void> {
  s.write(respmodHead('http://example.com/big.bin', httpResponseHead(bytes)));
  const framed = Buffer.concat([Buffer.from(`${MiB.toString(16)}\r\n`), Buffer.alloc(MiB, 0x61), Buffer.from('\r\n')]);
  for (let sent = 0; sent < bytes; sent += MiB) {
    if (!s.write(framed)) await new Promise((r) => s.once('drain', r));
  }
  s.write('0\r\n\r\n');
}

describe('a client that stops reading the answer', () => {
  it('is cut after write_idle_ms: aborted as send-timeout, temp file freed, connection closed, a warning logged', async () => {
    const server = await serverWith('{ write_idle_ms: 500 }');
    const s = await rawConnect(server.port);
    let closed = false;
    s.once('close', () => (closed = true));
    s.pause(); // never reads: the 32 MiB echo fills the socket buffers and the server's writes wait
    const record = server.nextRecord();
    await sendEchoRequest(s, 32 * MiB);
    expect(await record).toMatchObject({ verdict: 'aborted', reason: 'send-timeout', body_bytes: 32 * MiB });
    await waitFor('the connection closed on the server', () => (server.server.connectionCount === 0 ? true : undefined));
    expect(readdirSync(server.spoolDir)).toEqual([]);
    const warning = server.logs.find((l) => l.msg === 'send timeout: the client took none of the answer');
    expect(warning).toMatchObject({ level: 40, write_idle_ms: 500 });
    s.resume(); // what was in flight drains, then the close arrives
    await waitFor('the client saw the close', () => (closed ? true : undefined));
  }, 30_000);

  it('a slow reader that keeps taking the answer is never cut, however long the answer takes', async () => {
    const server = await serverWith('{ write_idle_ms: 600 }');
    const s = await rawConnect(server.port);
    const size = 24 * MiB;
    let received = 0;
    let reading = Promise.resolve();
    // Reads in bursts with pauses shorter than write_idle_ms: about 8 MiB/s, so the answer takes
    // several times write_idle_ms in all.
    s.on('data', (d: Buffer) => {
      received += d.length;
      if (received % MiB < d.length) {
        s.pause();
        reading = new Promise((r) => setTimeout(r, 120)).then(() => void s.resume());
      }
    });
    const record = server.nextRecord();
    const started = Date.now();
    await sendEchoRequest(s, size);
    expect(await record).toMatchObject({ verdict: 'clean', icap_status: 200, body_bytes: size });
    await reading;
    await waitFor('the whole echo', () => (received > size ? true : undefined), { timeoutMs: 20_000 });
    console.log(`slow reader: ${(received / MiB).toFixed(1)} MiB in ${Date.now() - started} ms`);
    expect(Date.now() - started).toBeGreaterThan(1200); // outlived write_idle_ms twice over
    expect(server.logs.some((l) => l.msg === 'send timeout: the client took none of the answer')).toBe(false);
    expect(server.server.connectionCount).toBe(1);
  }, 40_000);
});

describe('a client that ignores our FIN after keep_alive_ms', () => {
  it('does not keep its connection: Max-Connections slots come back', async () => {
    const server = await serverWith('{ keep_alive_ms: 200 }', '  max_connections: 2\n');
    for (let i = 0; i < 2; i++) {
      // allowHalfOpen: the client's side stays open after our FIN, as a hung client's would.
      const s = await rawConnect(server.port, true);
      s.write(buildRequest({ method: 'OPTIONS' }).first);
      await new Promise((r) => s.once('data', r));
    }
    expect(server.server.connectionCount).toBe(2);
    // keep_alive_ms (0.2 s), then the FIN, then LINGER_MS (2 s) at most.
    await waitFor('both connections destroyed', () => (server.server.connectionCount === 0 ? true : undefined), { timeoutMs: 5_000 });
    const c = await TestClient.connect(server.port);
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    expect((await c.read()).status).toBe(200);
    c.close();
  }, 20_000);
});
