/**
 * Bytes that arrive while an answer is being made (a pipelined request, RFC 3507 §4.2's
 * persistent connections over HTTP/1.1 rules): the connection keeps them for later, stops reading
 * the socket so a client cannot make it buffer without bound, and answers everything in order once
 * the first answer is out. The socket is only paused when such bytes come (connection.ts #onData),
 * so these tests hold a scan open and send behind it.
 *
 * A FIN (half-close) is such input too: a client that shuts down its sending side after its
 * requests still gets every complete one answered, then the connection closes; a request the FIN
 * cut short is dropped at once rather than left to the header timeout.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta } from '../../src/backends/backend.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';
import { buildRequest } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { ScriptedBackend } from '../helpers/scripted-backend.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/** The scripted engine, whose scans can be held: after hold(), each scan waits until release(). */
class GatedBackend extends ScriptedBackend {
  #gate: Promise<void> = Promise.resolve();
  #release: () => void = () => {};
  #onScan: () => void = () => {};
  /** Resolves when a scan starts after the last hold(). */
  scanStarted: Promise<void> = Promise.resolve();

  constructor() {
    super({ name: 'gate' });
  }

  hold(): void {
    this.#gate = new Promise<void>((resolve) => (this.#release = resolve));
    this.scanStarted = new Promise<void>((resolve) => (this.#onScan = resolve));
  }

  release(): void {
    this.#release();
  }

  override async scan(body: SpooledBody, meta: ScanMeta): Promise<BackendResult> {
    const result = await super.scan(body, meta);
    this.#onScan();
    await this.#gate;
    return result;
  }
}

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('input that arrives while an answer is being made', () => {
  const gate = new GatedBackend();
  let srv: TestServer;
  beforeAll(async () => {
    const yaml = `backends:
  gate: { type: builtin }
services:
  respmod:
    methods: [RESPMOD]
    backends: [gate]
`;
    srv = await startTestServer(yaml, { backends: new Map<string, Backend>([['gate', gate]]) });
  });
  afterAll(() => srv.close());

  it('is read no further than a socket read or two until the answer is out, then answered in order', async () => {
    // Our own listener hands its sockets to the server (as the server's listeners do), so the
    // test can see how much the server side has read.
    let serverSide: Socket | undefined;
    const listener = createServer((socket) => {
      serverSide = socket;
      srv.server.accept(socket);
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const client = await TestClient.connect((listener.address() as AddressInfo).port);
    try {
      const first = buildRequest({ body: [Buffer.alloc(100, 'a')], headers: [['Allow', '204']] }).first;
      gate.scanned.length = 0;
      gate.hold();
      client.write(first);
      await gate.scanStarted;
      // 32 MiB behind the held request, in 1 MiB writes. A server that kept reading would have
      // taken several MiB into memory by now; one that paused holds at most a read or two
      // (64 KiB each) beyond the first request, the rest waiting in the kernel and the client.
      const second = buildRequest({ body: Array.from({ length: 32 }, (_, i) => Buffer.alloc(MiB, 97 + (i % 26))), headers: [['Allow', '204']] }).first;
      for (let at = 0; at < second.length; at += MiB) client.write(second.subarray(at, at + MiB));
      await sleep(300);
      expect(serverSide!.bytesRead - first.length).toBeLessThan(MiB / 4);
      expect(client.pending.length).toBe(0); // nothing answered yet

      gate.release();
      expect((await client.read()).status).toBe(204);
      expect((await client.read(20_000)).status).toBe(204);
      expect(gate.scanned.map((b) => b.length)).toEqual([100, 32 * MiB]);
    } finally {
      client.close();
      await new Promise((resolve) => listener.close(resolve));
    }
  });

  it('answers a request sent in pieces behind an answered one on the same connection', async () => {
    const client = await TestClient.connect(srv.port);
    try {
      const options = buildRequest({ method: 'OPTIONS' }).first;
      const respmod = buildRequest({ body: [Buffer.alloc(5000, 'b')], headers: [['Allow', '204']] }).first;
      // One write holds the OPTIONS request and the first bytes of the next; the rest follows in
      // later writes while (or after) the OPTIONS answer is made.
      client.write(Buffer.concat([options, respmod.subarray(0, 10)]));
      for (let at = 10; at < respmod.length; at += 700) {
        await sleep(1);
        client.write(respmod.subarray(at, at + 700));
      }
      expect((await client.read()).header('Methods')).toBe('RESPMOD');
      expect((await client.read()).status).toBe(204);
    } finally {
      client.close();
    }
  });

  /**
   * On a new connection: sends `bytes` while scans are held, half-closes once the first scan has
   * started (FIN while the answer is being made: `printf … | nc`, scripted clients), then lets it finish.
   */
  async function sendAndHalfClose(bytes: Buffer): Promise<TestClient> {
    const client = await TestClient.connect(srv.port);
    gate.hold();
    client.write(bytes);
    await gate.scanStarted;
    client.socket.end();
    await sleep(100);
    gate.release();
    return client;
  }

  const respmod = (fill: string): Buffer => buildRequest({ body: [Buffer.alloc(200, fill)], headers: [['Allow', '204']] }).first;

  it('answers a client that half-closes right after its request (shutdown of its sending side)', async () => {
    const client = await sendAndHalfClose(respmod('c'));
    try {
      expect((await client.read()).status).toBe(204);
      await client.waitClosed(); // then the server closes its side too
    } finally {
      client.close();
    }
  });

  it('after a FIN, still answers the complete requests sent before it, then closes', async () => {
    const client = await sendAndHalfClose(Buffer.concat([respmod('d'), respmod('e'), buildRequest({ method: 'OPTIONS' }).first]));
    try {
      expect((await client.read()).status).toBe(204);
      expect((await client.read()).status).toBe(204);
      expect((await client.read()).header('Methods')).toBe('RESPMOD');
      await client.waitClosed();
    } finally {
      client.close();
    }
  });

  it('after a FIN, answers every request that is answered at once behind a scanned one, then closes', async () => {
    // OPTIONS and a RESPMOD without a body are answered inside the decoder's event, without a promise:
    // the FIN check must wait until the decoder's loop has taken all of them, not see the next one
    // still buffered as a cut request (the second OPTIONS was lost that way).
    const options = buildRequest({ method: 'OPTIONS' }).first;
    const noBody = buildRequest({ headers: [['Allow', '204']] }).first;
    const client = await sendAndHalfClose(Buffer.concat([respmod('g'), options, noBody, options]));
    try {
      expect((await client.read()).status).toBe(204);
      expect((await client.read()).header('Methods')).toBe('RESPMOD');
      expect((await client.read()).status).toBe(204);
      expect((await client.read()).header('Methods')).toBe('RESPMOD');
      await client.waitClosed();
    } finally {
      client.close();
    }
  });

  it('after a FIN that cut a request short, answers the one before it and closes instead of waiting', async () => {
    const whole = respmod('f');
    const client = await sendAndHalfClose(Buffer.concat([whole, whole.subarray(0, whole.length - 20)]));
    try {
      expect((await client.read()).status).toBe(204);
      await client.waitClosed(2000); // not the header timeout: the rest can never come
      expect(client.pending.length).toBe(0);
    } finally {
      client.close();
    }
  });
});
