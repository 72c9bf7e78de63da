/**
 * Content-Encoding bodies through the server (issue 5): scanned decoded, answered from the
 * original bytes, bounded, and a decoding failure never passes as clean.
 */
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EICAR, httpResponseHead } from '../helpers/icap-messages.js';
import { exchange } from '../helpers/icap-exchange.js';
import { ScriptedBackend } from '../helpers/scripted-backend.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const CONFIG = `
cache: { enabled: false }
services:
  respmod: { methods: [RESPMOD] }
  reqmod: { methods: [REQMOD] }
  allowall: { methods: [RESPMOD], on_error: allow }
  bombsok:
    methods: [RESPMOD]
    rules: [{ name: bombs-ok, on_error: { decompression-bomb: allow } }]
  nodecode: { methods: [RESPMOD], content_decoding: { enabled: false } }
`;

/** Text with EICAR in the middle: what a decoder must reach to find it. */
const INFECTED = Buffer.concat([Buffer.from('<html>'.repeat(2000)), EICAR, Buffer.from('</html>'.repeat(2000))]);
const CLEAN = Buffer.from('<p>nothing to see here</p>\n'.repeat(4000));

const encoded = (encoding: string, body: Buffer): { resHdr: string; body: Buffer[] } => ({
  resHdr: httpResponseHead(body.length, `Content-Encoding: ${encoding}\r\n`),
  body: [body],
});

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer(CONFIG);
});
afterAll(() => srv.close());

describe('decoded for scanning', () => {
  it('gzip EICAR → blocked, and the access log says what was decoded', async () => {
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...encoded('gzip', gzipSync(INFECTED)), headers: [['Allow', '204']] });
    expect(r.status).toBe(200);
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
    expect(await record).toMatchObject({
      verdict: 'infected',
      decoding: { codings: ['gzip'], outcome: 'decoded', decoded_bytes: INFECTED.length },
      cache: 'bypass',
    });
  });

  it('the same gzip body on a service with content_decoding off is not decoded (EICAR stays hidden)', async () => {
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { service: 'nodecode', ...encoded('gzip', gzipSync(INFECTED)), headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
    expect((await record).decoding).toBeUndefined();
  });

  it.each([
    ['deflate (zlib-wrapped)', 'deflate', deflateSync(INFECTED)],
    ['deflate (raw, as some servers send it)', 'deflate', deflateRawSync(INFECTED)],
    ['br', 'br', brotliCompressSync(INFECTED)],
    ['x-gzip', 'x-gzip', gzipSync(INFECTED)],
    ['gzip, br (stacked, undone last first)', 'gzip, br', brotliCompressSync(gzipSync(INFECTED))],
  ])('%s EICAR → blocked', async (_label, encoding, body) => {
    const r = await exchange(srv.port, { ...encoded(encoding, body), headers: [['Allow', '204']] });
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
  });

  it('REQMOD: a gzip-encoded upload is decoded too (Content-Encoding of the request)', async () => {
    const reqHdr = 'POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\nContent-Encoding: gzip\r\n\r\n';
    const r = await exchange(srv.port, { method: 'REQMOD', reqHdr, body: [gzipSync(INFECTED)] });
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
  });
});

describe('answered from the original bytes', () => {
  it('gzip clean with Allow: 204 → 204', async () => {
    const r = await exchange(srv.port, { ...encoded('gzip', gzipSync(CLEAN)), headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
  });

  it('gzip clean without Allow: 204 → 200 echoing the compressed bytes and the head with its Content-Encoding', async () => {
    const compressed = gzipSync(CLEAN);
    const request = encoded('gzip', compressed);
    const r = await exchange(srv.port, request);
    expect(r.status).toBe(200);
    expect(r.resHdr).toBe(request.resHdr);
    expect(r.body?.equals(compressed)).toBe(true);
  });
});

describe('bombs and broken streams', () => {
  // 32 MiB of zeros gzip to ~32 KiB: past 100 × the encoded size (and the 1 MiB grace).
  const BOMB = gzipSync(Buffer.alloc(32 * 1024 * 1024));

  it('a decompression bomb blocks by default, as its own outcome', async () => {
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...encoded('gzip', BOMB), headers: [['Allow', '204']] });
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=content-decoding:decompression-bomb');
    expect(await record).toMatchObject({ verdict: 'error-blocked', scan_errors: ['content-decoding:decompression-bomb'], decoding: { outcome: 'decompression-bomb' } });
  });

  it('on_error: allow does not cover a bomb; it still blocks', async () => {
    const r = await exchange(srv.port, { service: 'allowall', ...encoded('gzip', BOMB), headers: [['Allow', '204']] });
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=content-decoding:decompression-bomb:block');
  });

  it('a failure matrix naming decompression-bomb: allow lets it through, marked', async () => {
    const r = await exchange(srv.port, { service: 'bombsok', ...encoded('gzip', BOMB), headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=error-policy; errors=content-decoding:decompression-bomb:allow; rule=bombs-ok');
  });

  it('a truncated gzip stream is scanned as far as it decodes: EICAR there blocks', async () => {
    const whole = gzipSync(Buffer.concat([INFECTED, Buffer.alloc(200_000, 'z')]));
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...encoded('gzip', whole.subarray(0, whole.length - 100)), headers: [['Allow', '204']] });
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
    expect(await record).toMatchObject({ verdict: 'infected', decoding: { outcome: 'truncated' }, scan_errors: ['content-decoding:unsupported'] });
  });

  it('a truncated clean stream is never "clean": unsupported, blocked by default, allowed and marked under on_error: allow', async () => {
    const whole = gzipSync(CLEAN);
    const cut = { ...encoded('gzip', whole.subarray(0, whole.length - 20)), headers: [['Allow', '204']] as [string, string][] };
    const blocked = await exchange(srv.port, cut);
    expect(blocked.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=content-decoding:unsupported');
    const allowed = await exchange(srv.port, { ...cut, service: 'allowall' });
    expect(allowed.status).toBe(204);
    expect(allowed.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=error-policy; errors=content-decoding:unsupported');
  });

  // Node's zlib stops at the end of a stream and drops what follows; curl -o and wget save it.
  const PAGE = CLEAN.subarray(0, 260);
  const AFTER = Buffer.concat([Buffer.from('\n'), EICAR]);
  it.each([
    ['gzip, zero padding', 'gzip', Buffer.concat([gzipSync(PAGE), Buffer.alloc(16)])],
    ['deflate (zlib-wrapped)', 'deflate', deflateSync(PAGE)],
    ['deflate (raw)', 'deflate', deflateRawSync(PAGE)],
    ['br', 'br', brotliCompressSync(PAGE)],
    ['gzip, br', 'gzip, br', brotliCompressSync(gzipSync(PAGE))],
  ])('%s, then EICAR after the end of the stream → blocked: corrupt, the raw bytes scanned', async (_label, encoding, stream) => {
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...encoded(encoding, Buffer.concat([stream, AFTER])), headers: [['Allow', '204']] });
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
    expect(await record).toMatchObject({ verdict: 'infected', decoding: { outcome: 'corrupt', decoded_bytes: PAGE.length } });
  });

  it('clean bytes after the end of the stream are never "clean"; zero padding after gzip is', async () => {
    const trailing = await exchange(srv.port, { ...encoded('br', Buffer.concat([brotliCompressSync(PAGE), PAGE])), headers: [['Allow', '204']] });
    expect(trailing.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=content-decoding:unsupported');
    const padded = await exchange(srv.port, { ...encoded('gzip', Buffer.concat([gzipSync(PAGE), Buffer.alloc(512)])), headers: [['Allow', '204']] });
    expect(padded.status).toBe(204);
    expect(padded.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
  });

  it('"gzip" that is not gzip at all: the raw bytes are scanned, EICAR in them blocks', async () => {
    const r = await exchange(srv.port, { ...encoded('gzip', INFECTED), headers: [['Allow', '204']] });
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
  });

  it('a coding we cannot undo (zstd): raw bytes scanned, otherwise unsupported', async () => {
    const infected = await exchange(srv.port, { ...encoded('zstd', INFECTED), headers: [['Allow', '204']] });
    expect(infected.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
    const record = srv.nextRecord();
    const clean = await exchange(srv.port, { ...encoded('zstd', CLEAN), headers: [['Allow', '204']] });
    expect(clean.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=content-decoding:unsupported');
    expect((await record).decoding).toEqual({ codings: [], outcome: 'unknown-encoding' });
  });
});

describe('streaming backends and encoded bodies', () => {
  let fake: TestServer;
  const engine = new ScriptedBackend({ streaming: true });
  beforeAll(async () => {
    fake = await startTestServer('cache: { enabled: false }\n', { backends: new Map([['builtin', engine]]) });
  });
  afterAll(() => fake.close());

  it('a gzip body opens no stream; scan() gets the decoded bytes at the end', async () => {
    const r = await exchange(fake.port, { ...encoded('gzip', gzipSync(INFECTED)), headers: [['Allow', '204']], preview: 1024 });
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=Scripted.Eicar;');
    expect(engine.streamed).toEqual([]);
    expect(engine.scanned).toHaveLength(1);
    expect(engine.scanned[0]!.equals(INFECTED)).toBe(true);
  });

  it('an identity body still streams, as before', async () => {
    const r = await exchange(fake.port, { resHdr: httpResponseHead(CLEAN.length, 'Content-Encoding: identity\r\n'), body: [CLEAN], headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
    expect(engine.streamEnds).toBe(1);
    expect(engine.streamed.at(-1)!.equals(CLEAN)).toBe(true);
  });
});
