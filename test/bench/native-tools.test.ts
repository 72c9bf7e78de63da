/**
 * bench/native/icap-native.c, the benchmark's default load generator and trivial responder: built
 * with the machine's C compiler, run against its own responder for every scenario shape the bench
 * uses, and against small Node servers that split answers at every offset, send chunked bodies,
 * send garbage or hang up. The bench trusts its counts: a framing slip here would be a wrong rate.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadOptions } from '../../bench/loadgen.js';
import { buildNativeTools, runNativeLoad, startNativeResponder } from '../../bench/lib/native-tools.js';
import { freePort } from '../../bench/lib/ports.js';
import type { ScenarioName } from '../../bench/lib/scenarios.js';

function load(port: number, scenario: ScenarioName, extra: Partial<LoadOptions> = {}): LoadOptions {
  return {
    host: '127.0.0.1',
    port,
    service: 'any',
    scenario,
    connections: 4,
    durationS: 0.4,
    warmupS: 0,
    requestTimeoutMs: 5_000,
    maxSeconds: 20,
    ...extra,
  };
}

/** A server that answers each complete request (one "\r\n\r\n"-ended head: OPTIONS) with answer(n). */
async function headServer(answer: (socket: Socket, n: number) => void): Promise<{ server: Server; port: number; answered: () => number }> {
  let n = 0;
  const server = createServer((socket) => {
    // Split answers go out as written (no Nagle wait for the client's delayed ACK).
    socket.setNoDelay(true);
    let pending = '';
    socket.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      for (let at = pending.indexOf('\r\n\r\n'); at !== -1; at = pending.indexOf('\r\n\r\n')) {
        pending = pending.slice(at + 4);
        answer(socket, n++);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, answered: () => n };
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('icap-native', () => {
  beforeAll(() => {
    buildNativeTools();
  }, 120_000);

  describe('against its own trivial responder', () => {
    let port = 0;
    let pid = 0;
    beforeAll(async () => {
      port = await freePort();
      pid = (await startNativeResponder(port)).pid!;
    });
    afterAll(() => {
      process.kill(pid, 'SIGKILL');
    });

    it.each([
      ['options', undefined, '200'],
      ['reqmod-null', undefined, '204'],
      ['respmod-4k', undefined, '204'],
      // The body fits in the preview: "0; ieof", answered at once (a 100 Continue would be an error).
      ['respmod-4k', 4096, '204'],
      ['respmod-1m', undefined, '204'],
      ['respmod-1m', 1024, '204'],
    ] as const)('%s (preview %s): every answer counted, no errors', async (scenario, preview, status) => {
      const r = await runNativeLoad(load(port, scenario, { preview }));
      expect(r.errors).toEqual({ total: 0, status: 0, socket: 0, timeout: 0, framing: 0 });
      expect(r.ok).toBeGreaterThan(20);
      expect(r.statuses).toEqual({ [status]: r.ok });
      expect(r.latencyMs.p50).toBeGreaterThan(0);
      expect(r.latencyMs.p99).toBeGreaterThanOrEqual(r.latencyMs.p50);
      expect(r.cycleMs!.mean).toBeGreaterThanOrEqual(r.latencyMs.mean);
      expect(r.cpu.usPerRequest).toBeGreaterThan(0);
      // A 1 MiB request is sent whole: far more bytes out than answers in.
      if (scenario === 'respmod-1m' && preview === undefined) expect(r.bytes.sent).toBeGreaterThan(r.ok * 1024 * 1024);
      expect(r.openLoop).toBeUndefined();
    }, 30_000);

    it('an open loop sends on its schedule, not as fast as the answers come', async () => {
      const r = await runNativeLoad(load(port, 'reqmod-null', { offeredRate: 2000, durationS: 1, warmupS: 0.2 }));
      expect(r.errors.total).toBe(0);
      // 2000 due in the 1 s window; the responder keeps up, so all but the last few in flight are counted,
      // and never more than the schedule (a closed loop here does tens of thousands).
      expect(r.ok).toBeGreaterThanOrEqual(1800);
      expect(r.ok).toBeLessThanOrEqual(2001);
      expect(r.openLoop!.offeredRate).toBe(2000);
      // Counted from when it was due, a request's latency is never shorter than from its write.
      expect(r.openLoop!.latencyFromDueMs.p50).toBeGreaterThanOrEqual(r.latencyMs.p50);
      expect(r.openLoop!.latencyFromDueMs.p99).toBeGreaterThanOrEqual(r.latencyMs.p99);
      expect(r.openLoop!.sendLagMs.p50).toBeGreaterThanOrEqual(0);
    }, 30_000);
  });

  it('an open loop counts only the requests due inside the window, not a warm-up backlog sent late', async () => {
    // The server holds its answers for the first 400 ms: with 2 connections busy, the requests due in
    // the 200 ms warm-up (~100) and after it queue up, then go out in a burst once answers flow. Those
    // due in the warm-up belong to it; counted by when they were sent, the window would hold ~600.
    let openedAt = 0;
    const held = await headServer((socket) => {
      openedAt ||= Date.now();
      const answer = (): void => void socket.write('ICAP/1.0 200 OK\r\nISTag: "t"\r\nEncapsulated: null-body=0\r\n\r\n');
      const wait = openedAt + 400 - Date.now();
      if (wait > 0) setTimeout(answer, wait);
      else answer();
    });
    try {
      const r = await runNativeLoad(load(held.port, 'options', { connections: 2, offeredRate: 500, durationS: 1, warmupS: 0.2 }));
      expect(r.errors.total).toBe(0);
      // 500 due in the 1 s window; the backlog of the window's first 200 ms is answered within it.
      expect(r.ok).toBeGreaterThanOrEqual(450);
      expect(r.ok).toBeLessThanOrEqual(501);
      // The window's own first requests waited ~200 ms for the held answers: counted from when they were due.
      expect(r.openLoop!.latencyFromDueMs.max).toBeGreaterThan(100);
    } finally {
      await close(held.server);
    }
  }, 30_000);

  it('an open loop counts the wait for a free connection when the server falls behind (no coordinated omission)', async () => {
    // Two connections, 20 ms per answer: at most ~100 answers/s against 500 due per second.
    const slow = await headServer((socket) => {
      setTimeout(() => socket.write('ICAP/1.0 200 OK\r\nISTag: "t"\r\nEncapsulated: null-body=0\r\n\r\n'), 20);
    });
    try {
      const r = await runNativeLoad(load(slow.port, 'options', { connections: 2, offeredRate: 500, durationS: 1, warmupS: 0 }));
      expect(r.errors.total).toBe(0);
      expect(r.rps).toBeLessThan(150);
      // Each answer takes ~20 ms from its write; from when it was due, the backlog adds hundreds of ms.
      expect(r.latencyMs.p99).toBeLessThan(200);
      expect(r.openLoop!.sendLagMs.p99).toBeGreaterThan(200);
      expect(r.openLoop!.latencyFromDueMs.p99).toBeGreaterThan(r.latencyMs.p99 + 200);
    } finally {
      await close(slow.server);
    }
  }, 30_000);

  it('frames an answer with a chunked body split at every offset', async () => {
    const http = 'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n';
    const answer = Buffer.from(
      `ICAP/1.0 200 OK\r\nISTag: "t"\r\nEncapsulated: res-hdr=0, res-body=${http.length}\r\n\r\n${http}` +
        // The second chunk's data looks like a last chunk: only its size says it is not.
        '5; name=value\r\nhello\r\n7\r\n0\r\n\r\nab\r\n0\r\nX-Trailer: 1\r\n\r\n',
      'latin1',
    );
    // Answer n is written in two pieces, split at offset n mod length, the second a moment later.
    const s = await headServer((socket, n) => {
      const cut = 1 + (n % (answer.length - 1));
      socket.write(answer.subarray(0, cut));
      setTimeout(() => socket.write(answer.subarray(cut)), 1);
    });
    try {
      const r = await runNativeLoad(load(s.port, 'options', { connections: 2, durationS: 1.5 }));
      expect(r.errors.total).toBe(0);
      expect(r.ok).toBeGreaterThan(answer.length); // every split point met at least once
      expect(r.statuses).toEqual({ '200': r.ok });
      expect(s.answered()).toBeGreaterThanOrEqual(r.ok);
    } finally {
      await close(s.server);
    }
  }, 30_000);

  it('counts a status outside 2xx as an error, and an answer that is not ICAP as a framing error', async () => {
    const busy = await headServer((socket) => socket.write('ICAP/1.0 503 Service Unavailable\r\nISTag: "t"\r\nEncapsulated: null-body=0\r\n\r\n'));
    const garbage = await headServer((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    try {
      const r503 = await runNativeLoad(load(busy.port, 'options'));
      expect(r503.ok).toBe(0);
      expect(r503.errors.status).toBe(r503.requests);
      expect(r503.statuses['503']).toBeGreaterThan(0);
      expect(r503.firstError).toBe('status 503');
      const bad = await runNativeLoad(load(garbage.port, 'options', { warmupS: 0 }));
      expect(bad.ok).toBe(0);
      expect(bad.firstError).toBe('framing error from the server');
    } finally {
      await close(busy.server);
      await close(garbage.server);
    }
  }, 30_000);

  it('takes a head of exactly 64 KiB and calls a longer one a framing error', async () => {
    // HEAD_MAX in icap-native.c: the head, its final CRLF CRLF included, may fill the buffer, not overflow it.
    const headOf = (size: number): string => {
      const start = 'ICAP/1.0 200 OK\r\nISTag: "t"\r\nEncapsulated: null-body=0\r\nX-Pad: ';
      return start + 'p'.repeat(size - start.length - 4) + '\r\n\r\n';
    };
    const fits = await headServer((socket) => socket.write(headOf(65536)));
    const over = await headServer((socket) => socket.write(headOf(65537)));
    try {
      const ok = await runNativeLoad(load(fits.port, 'options'));
      expect(ok.errors.total).toBe(0);
      expect(ok.ok).toBeGreaterThan(0);
      const bad = await runNativeLoad(load(over.port, 'options', { warmupS: 0 }));
      expect(bad.ok).toBe(0);
      expect(bad.firstError).toBe('framing error from the server');
    } finally {
      await close(fits.server);
      await close(over.server);
    }
  }, 30_000);

  it('ends on time when the server hangs up or never answers', async () => {
    const hangUp = await headServer((socket) => socket.destroy());
    const silent = await headServer(() => {});
    try {
      const gone = await runNativeLoad(load(hangUp.port, 'options'));
      expect(gone.ok).toBe(0);
      expect(gone.firstError).toMatch(/^socket: /);
      const started = Date.now();
      const mute = await runNativeLoad(load(silent.port, 'options', { requestTimeoutMs: 200, durationS: 0.5 }));
      expect(mute.ok).toBe(0);
      expect(mute.errors.timeout).toBe(4);
      expect(mute.firstError).toBe('timeout after 200 ms');
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      await close(hangUp.server);
      await close(silent.server);
    }
  }, 30_000);
});
