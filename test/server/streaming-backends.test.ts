/**
 * Backends fed while the body arrives (StreamingScan): they see every byte in order, their
 * backpressure slows the socket without losing data, their verdict counts, and they are
 * aborted when the client goes away.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, StreamingScan } from '../../src/backends/backend.js';
import { buildRequest } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

class SlowStreamingBackend implements Backend {
  readonly name = 'builtin';
  readonly version = 'slow-stream/1';
  scanCalls = 0;
  fullReturns = 0;
  aborted: string[] = [];
  received: Buffer[] = [];

  async scan(): Promise<BackendResult> {
    this.scanCalls++;
    return { outcome: 'error', backend: this.name, kind: 'backend-error', message: 'scan() must not be used', durationMs: 0 };
  }

  openStream(): StreamingScan {
    const chunks: Buffer[] = [];
    this.received = chunks;
    let writes = 0;
    let drainListeners: (() => void)[] = [];
    return {
      write: (chunk) => {
        chunks.push(Buffer.from(chunk));
        // Every third write says "full" and drains 5 ms later: a slow engine.
        if (++writes % 3 !== 0) return true;
        this.fullReturns++;
        setTimeout(() => {
          const l = drainListeners;
          drainListeners = [];
          for (const f of l) f();
        }, 5);
        return false;
      },
      onDrain: (listener) => drainListeners.push(listener),
      end: async () => {
        const all = Buffer.concat(chunks);
        return all.includes('BAD-BYTES')
          ? { outcome: 'infected', backend: this.name, threats: ['Test.Stream'], durationMs: 1 }
          : { outcome: 'clean', backend: this.name, durationMs: 1 };
      },
      abort: (reason) => this.aborted.push(reason),
    };
  }

  status() {
    return [{ endpoint: 'fake', healthy: true, inFlight: 0, queued: 0 }];
  }

  async close(): Promise<void> {}
}

let srv: TestServer;
const backend = new SlowStreamingBackend();
beforeAll(async () => {
  srv = await startTestServer('', { backends: new Map([['builtin', backend]]) });
});
afterAll(() => srv.close());

function body(size: number, marker?: string): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = 0x30 + (i % 10);
  if (marker) b.write(marker, size - 2000);
  return b;
}

describe('streaming backends', () => {
  it('receive every byte in order under backpressure, and their verdict blocks', async () => {
    const payload = body(3 * 1024 * 1024, 'BAD-BYTES');
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ body: [payload], preview: 1024, headers: [['Allow', '204']] }).first);
    expect((await c.read()).status).toBe(100);
    c.write(buildRequest({ body: [payload], preview: 1024 }).rest);
    const r = await c.read();
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=Test.Stream;');
    expect(Buffer.concat(backend.received).equals(payload)).toBe(true);
    expect(backend.fullReturns).toBeGreaterThan(3);
    expect(backend.scanCalls).toBe(0);
    c.close();
  });

  it('clean streamed body → 204', async () => {
    const payload = body(500_000);
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ body: [payload], headers: [['Allow', '204']] }).first);
    expect((await c.read()).status).toBe(204);
    expect(Buffer.concat(backend.received).equals(payload)).toBe(true);
    c.close();
  });

  it('are aborted when the client disconnects mid-body', async () => {
    const before = backend.aborted.length;
    const c = await TestClient.connect(srv.port);
    const req = buildRequest({ body: [body(2_000_000)], headers: [['Allow', '204']] });
    const record = srv.nextRecord();
    c.write(req.first.subarray(0, 1_000_000));
    await new Promise((r) => setTimeout(r, 100));
    c.close();
    expect(await record).toMatchObject({ verdict: 'aborted', reason: 'client-disconnected' });
    expect(backend.aborted.slice(before)).toEqual(['client-disconnected']);
  });
});
