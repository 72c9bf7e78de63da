/**
 * The verdict cache in the scan path (issue 5): a repeated file is answered without rescanning,
 * only definite verdicts are kept, and a new engine version or another policy misses.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EICAR, httpResponseHead, type RequestSpec } from '../helpers/icap-messages.js';
import { exchange } from '../helpers/icap-exchange.js';
import { ScriptedBackend } from '../helpers/scripted-backend.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { formData } from '../pipeline/multipart-fixtures.js';

let seq = 0;
/** A body no other test sends: each test starts from a cache miss. */
const unique = (size = 100_000): Buffer => {
  const b = Buffer.alloc(size, `unique body ${++seq} `);
  return b;
};
const respmod = (body: Buffer, extra: Partial<RequestSpec> = {}): RequestSpec => ({ body: [body], headers: [['Allow', '204']], ...extra });

let srv: TestServer;
const engine = new ScriptedBackend({ name: 'builtin' });
const streamer = new ScriptedBackend({ name: 'streamer', streaming: true });

beforeAll(async () => {
  srv = await startTestServer(
    `
backends:
  builtin: { type: builtin }
  streamer: { type: builtin }
services:
  respmod: { methods: [RESPMOD] }
  other: { methods: [RESPMOD] }
  streaming: { methods: [RESPMOD], backends: [streamer] }
  reqmod: { methods: [REQMOD] }
  uploads: { methods: [REQMOD], backends: [streamer] }
`,
    { backends: new Map<string, ScriptedBackend>([['builtin', engine], ['streamer', streamer]]) },
  );
});
afterAll(() => srv.close());

async function send(spec: RequestSpec) {
  const record = srv.nextRecord();
  const response = await exchange(srv.port, spec);
  return { response, record: await record };
}

describe('verdict cache', () => {
  it('a repeated clean body is scanned once; the second answer says cache=hit', async () => {
    const body = unique();
    const before = engine.scanCount;
    const first = await send(respmod(body));
    expect(first.record.cache).toBe('miss');
    expect(first.response.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
    const second = await send(respmod(body));
    expect(second.response.status).toBe(204);
    expect(second.response.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean; cache=hit');
    expect(second.record).toMatchObject({ cache: 'hit', verdict: 'clean', scans: [] });
    expect(engine.scanCount).toBe(before + 1);
  });

  it('a repeated infected body is blocked from the cache with the same threat', async () => {
    const body = Buffer.concat([unique(5000), EICAR]);
    await send(respmod(body));
    const before = engine.scanCount;
    const { response, record } = await send(respmod(body));
    expect(response.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=Scripted.Eicar;');
    expect(response.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected; cache=hit');
    expect(record).toMatchObject({ cache: 'hit', verdict: 'infected', threats: ['Scripted.Eicar'] });
    expect(engine.scanCount).toBe(before);
  });

  it('an error is never cached: the next request scans again, and only its clean verdict is kept', async () => {
    const body = unique();
    const before = engine.scanCount;
    engine.failNext = 1;
    const failed = await send(respmod(body));
    expect(failed.response.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=builtin:timeout');
    expect(failed.record.cache).toBe('miss');
    const retried = await send(respmod(body));
    expect(retried.record.cache).toBe('miss');
    expect(retried.response.status).toBe(204);
    const cached = await send(respmod(body));
    expect(cached.record.cache).toBe('hit');
    expect(engine.scanCount).toBe(before + 2);
  });

  it('a new engine version (signature update) misses', async () => {
    const body = unique();
    await send(respmod(body));
    engine.version = 'scripted/2';
    try {
      const before = engine.scanCount;
      expect((await send(respmod(body))).record.cache).toBe('miss');
      expect(engine.scanCount).toBe(before + 1);
      expect((await send(respmod(body))).record.cache).toBe('hit');
    } finally {
      engine.version = 'scripted/1';
    }
  });

  it('another service (another policy) misses', async () => {
    const body = unique();
    await send(respmod(body));
    expect((await send(respmod(body, { service: 'other' }))).record.cache).toBe('miss');
  });

  it('a hit aborts the streams still running; the first request ended its stream normally', async () => {
    const body = unique();
    await send(respmod(body, { service: 'streaming' }));
    const ends = streamer.streamEnds;
    const { response, record } = await send(respmod(body, { service: 'streaming' }));
    expect(response.status).toBe(204);
    expect(record.cache).toBe('hit');
    expect(streamer.streamEnds).toBe(ends);
    expect(streamer.streamAborts.at(-1)).toBe('verdict cache hit');
    expect(streamer.streamed.at(-1)!.equals(body)).toBe(true);
  });

  it('the key is the content scanned: a gzip body and then the same content plain hit', async () => {
    const content = unique();
    const gz = await send(respmod(gzipSync(content), { resHdr: httpResponseHead(undefined, 'Content-Encoding: gzip\r\n') }));
    expect(gz.record).toMatchObject({ cache: 'miss', decoding: { outcome: 'decoded' } });
    expect((await send(respmod(content))).record.cache).toBe('hit');
  });

  it('a body that failed to decode bypasses the cache', async () => {
    const { record } = await send(respmod(unique(), { resHdr: httpResponseHead(undefined, 'Content-Encoding: gzip\r\n') }));
    expect(record).toMatchObject({ cache: 'bypass', decoding: { outcome: 'corrupt' } });
  });

  it('multipart parts are cached one by one: the same file in another upload hits', async () => {
    const file = unique(30_000);
    const upload = (boundary: string, note: string): RequestSpec => ({
      method: 'REQMOD',
      reqHdr: `POST http://x.example/up HTTP/1.1\r\nHost: x.example\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n\r\n`,
      body: [formData(boundary, [{ name: 'note', body: note }, { name: 'file', fileName: 'same.bin', body: file }])],
      headers: [['Allow', '204']],
    });
    await send(upload('first-boundary', 'hello'));
    await send(upload('second-boundary', 'hello'));
    const before = engine.scanned.length;
    const changed = await send(upload('third-boundary', 'a different note'));
    expect(changed.record.cache).toBe('miss');
    expect(changed.record.parts).toEqual([
      expect.objectContaining({ label: 'field note', outcome: 'clean' }),
      expect.objectContaining({ label: 'same.bin', outcome: 'clean', cached: true }),
    ]);
    // Only the changed note was scanned.
    expect(engine.scanned.slice(before).map((b) => b.toString())).toEqual(['a different note']);
    const again = await send(upload('fourth-boundary', 'a different note'));
    expect(again.record.cache).toBe('hit');
    expect(again.response.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean; cache=hit');
  });

  describe('a multipart upload with a streaming backend (the whole body streamed, the parts scanned)', () => {
    const upload = (body: Buffer, boundary: string): RequestSpec => ({
      method: 'REQMOD',
      service: 'uploads',
      reqHdr: `POST http://x.example/up HTTP/1.1\r\nHost: x.example\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n\r\n`,
      body: [body],
      headers: [['Allow', '204']],
    });

    it('EICAR in the preamble and a clean part: blocked on every attempt, not only before the part was cached', async () => {
      const body = formData('pre-boundary', [{ name: 'f', fileName: 'a.txt', body: unique(2000) }], { preamble: `${EICAR.toString('latin1')}\r\n` });
      for (const attempt of [1, 2, 3]) {
        const { response } = await send(upload(body, 'pre-boundary'));
        expect(response.header('X-ICAP-Bridge-Decision'), `attempt ${attempt}`).toBe('block; reason=infected; part=preamble');
      }
    });

    it('a threat only the whole-body stream sees still blocks when every part hits: the keyless stream runs', async () => {
      // In a part's header block: in no part and no preamble, so only the stream finds it.
      const file = unique(2000);
      const body = formData('hdr-boundary', [{ name: 'f', fileName: 'a.txt', headers: [`X-Note: ${EICAR.toString('latin1')}`], body: file }]);
      const first = await send(upload(body, 'hdr-boundary'));
      expect(first.response.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected');
      expect(first.record).toMatchObject({ cache: 'miss', parts: [expect.objectContaining({ label: 'a.txt', outcome: 'clean' })] });
      for (const attempt of [2, 3]) {
        const ends = streamer.streamEnds;
        const { response, record } = await send(upload(body, 'hdr-boundary'));
        expect(response.header('X-ICAP-Bridge-Decision'), `attempt ${attempt}`).toBe('block; reason=infected');
        // The part came from the cache; the stream, which no key stands for, ran to its end.
        expect(record.cache).toBe('miss');
        expect(record.parts).toEqual([expect.objectContaining({ label: 'a.txt', outcome: 'clean', cached: true })]);
        expect(streamer.streamEnds).toBe(ends + 1);
      }
      // The stream's finding was never stored under the part's key: the same file alone is clean.
      const alone = await send(upload(formData('hdr-boundary', [{ name: 'f', fileName: 'a.txt', body: file }]), 'hdr-boundary'));
      expect(alone.response.status).toBe(204);
      expect(alone.record.parts).toEqual([expect.objectContaining({ label: 'a.txt', outcome: 'clean', cached: true })]);
    });
  });

  it('hits and misses are counted in /metrics', async () => {
    const text = await srv.server.metrics.registry.getSingleMetricAsString('icap_bridge_verdict_cache_lookups_total');
    expect(text).toMatch(/icap_bridge_verdict_cache_lookups_total\{service="respmod",result="hit"\} [1-9]/);
    expect(text).toMatch(/icap_bridge_verdict_cache_lookups_total\{service="respmod",result="miss"\} [1-9]/);
    expect(text).toMatch(/icap_bridge_verdict_cache_lookups_total\{service="respmod",result="bypass"\} [1-9]/);
  });
});

describe('verdict cache off', () => {
  let off: TestServer;
  const counted = new ScriptedBackend({ name: 'builtin' });
  beforeAll(async () => {
    off = await startTestServer('cache: { enabled: false }\n', { backends: new Map([['builtin', counted]]) });
  });
  afterAll(() => off.close());

  it('every request is scanned, and the log says bypass', async () => {
    const body = unique();
    for (let i = 0; i < 2; i++) {
      const record = off.nextRecord();
      expect((await exchange(off.port, respmod(body))).status).toBe(204);
      expect((await record).cache).toBe('bypass');
    }
    expect(counted.scanned).toHaveLength(2);
  });
});
