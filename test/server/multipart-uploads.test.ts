/**
 * multipart uploads through the server (issue 5; form-data, related, mixed): every part scanned as its own file,
 * a block names the part, scanParts backends get one batch, and a split failure is an outcome;
 * a part sent base64-encoded is scanned decoded too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EICAR } from '../helpers/icap-messages.js';
import { exchange } from '../helpers/icap-exchange.js';
import { ScriptedBackend } from '../helpers/scripted-backend.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { base64Lines, formData } from '../pipeline/multipart-fixtures.js';

const BOUNDARY = '----icapbridge7MA4YWxkTrZu0gW';
const TEXT = 'a harmless comment\r\nover two lines';
/** A "binary" upload: bytes of every value, EICAR in the middle. */
const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 4096 }, (_, i) => i & 0xff)), EICAR, Buffer.alloc(3000, 0xfe)]);

function upload(body: Buffer, contentType = `multipart/form-data; boundary=${BOUNDARY}`) {
  const reqHdr = `POST http://uploads.example/form HTTP/1.1\r\nHost: uploads.example\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`;
  return { method: 'REQMOD' as const, reqHdr, body: [body] };
}

const infectedUpload = (): Buffer =>
  formData(BOUNDARY, [
    { name: 'comment', body: TEXT },
    { name: 'upload', fileName: 'eicar.bin', contentType: 'application/octet-stream', body: BINARY },
  ]);

describe('with the embedded engine', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer(`
cache: { enabled: false }
services:
  reqmod: { methods: [REQMOD] }
  lenient:
    methods: [REQMOD]
    rules: [{ name: odd-uploads, on_error: { unsupported: allow } }]
`);
  });
  afterAll(() => srv.close());

  it('a clean text part and an EICAR binary part → blocked, naming the part everywhere', async () => {
    const record = srv.nextRecord();
    const r = await exchange(srv.port, upload(infectedUpload()));
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File (in eicar.bin);');
    expect(r.header('X-Violations-Found')).toBe('1\r\n\teicar.bin\r\n\tEICAR-Test-File (in eicar.bin)\r\n\t0\r\n\t2');
    expect(r.header('X-Virus-ID')).toBe('EICAR-Test-File');
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected; part=eicar.bin');
    expect(r.body?.toString()).toContain('EICAR-Test-File (in eicar.bin)');
    const rec = await record;
    expect(rec).toMatchObject({ verdict: 'infected', threats: ['EICAR-Test-File'], multipart: { outcome: 'split', parts: 2 } });
    expect(rec.parts).toEqual([
      { label: 'field comment', media_type: 'text/plain', bytes: Buffer.byteLength(TEXT), outcome: 'clean', threats: [] },
      { label: 'eicar.bin', file_name: 'eicar.bin', media_type: 'application/octet-stream', bytes: BINARY.length, outcome: 'infected', threats: ['EICAR-Test-File'] },
    ]);
    expect(rec.scans.map((s) => `${s.backend}:${s.part ?? '-'}:${s.outcome}`)).toEqual(['builtin:field comment:clean', 'builtin:eicar.bin:infected']);
  });

  it('every part clean → 204 with Allow: 204, and without it the original upload echoed byte for byte', async () => {
    const body = formData(BOUNDARY, [
      { name: 'comment', body: TEXT },
      { name: 'upload', fileName: 'photo.jpg', contentType: 'image/jpeg', body: Buffer.alloc(20_000, 0xd8) },
    ]);
    const allowed = await exchange(srv.port, { ...upload(body), headers: [['Allow', '204']] });
    expect(allowed.status).toBe(204);
    expect(allowed.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
    const echoed = await exchange(srv.port, upload(body));
    expect(echoed.status).toBe(200);
    expect(echoed.body?.equals(body)).toBe(true);
  });

  it('an upload cut before its close delimiter: unsupported (blocked), allowed and marked where the policy says so', async () => {
    const cut = formData(BOUNDARY, [{ name: 'comment', body: TEXT }, { name: 'f', fileName: 'a.txt', body: 'plain text' }], { close: false });
    const record = srv.nextRecord();
    const blocked = await exchange(srv.port, upload(cut));
    expect(blocked.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=multipart:unsupported');
    expect(await record).toMatchObject({ multipart: { outcome: 'truncated' }, scan_errors: ['multipart:unsupported'] });
    const allowed = await exchange(srv.port, { ...upload(cut), service: 'lenient', headers: [['Allow', '204']] });
    expect(allowed.status).toBe(204);
    expect(allowed.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=error-policy; errors=multipart:unsupported:allow; rule=odd-uploads');
  });

  it('a cut upload with EICAR in a part that did arrive → blocked as infected, whatever the policy says about the cut', async () => {
    const cut = formData(BOUNDARY, [{ name: 'upload', fileName: 'eicar.bin', body: BINARY }, { name: 'more', body: 'x' }], { close: false });
    const r = await exchange(srv.port, { ...upload(cut), service: 'lenient' });
    // The whole body is scanned too when the split fails; the salvaged part is named.
    expect(r.headers.get('x-infection-found')).toEqual([
      'Type=0; Resolution=2; Threat=EICAR-Test-File;',
      'Type=0; Resolution=2; Threat=EICAR-Test-File (in eicar.bin);',
    ]);
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected; errors=multipart:unsupported:allow; rule=odd-uploads; part=eicar.bin');
  });

  it.each([
    ['preamble', { preamble: `${EICAR.toString('latin1')}\r\n` }],
    ['epilogue', { epilogue: EICAR.toString('latin1') }],
  ] as const)('EICAR in the %s, outside every part → blocked, naming where it was', async (region, around) => {
    const body = formData(BOUNDARY, [{ name: 'f', fileName: 'a.txt', body: 'plain text' }], around);
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...upload(body), headers: [['Allow', '204']] });
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.header('X-Infection-Found')).toBe(`Type=0; Resolution=2; Threat=EICAR-Test-File (in ${region});`);
    expect(r.header('X-ICAP-Bridge-Decision')).toBe(`block; reason=infected; part=${region}`);
    const rec = await record;
    // The parts count stays the form's; the bytes around them are listed by where they were.
    expect(rec).toMatchObject({ verdict: 'infected', threats: ['EICAR-Test-File'], multipart: { outcome: 'split', parts: 1 } });
    const outside = { label: region, media_type: 'application/octet-stream', bytes: region === 'preamble' ? EICAR.length + 2 : EICAR.length, outcome: 'infected', threats: ['EICAR-Test-File'] };
    const part = { label: 'a.txt', file_name: 'a.txt', media_type: 'text/plain', bytes: 10, outcome: 'clean', threats: [] };
    expect(rec.parts).toEqual(region === 'preamble' ? [outside, part] : [part, outside]);
  });

  it('a nested multipart part with EICAR in its inner preamble → blocked, naming the part (receivers store it whole)', async () => {
    const nested = Buffer.concat([EICAR, Buffer.from('\r\n--innerB--')]);
    const body = formData(BOUNDARY, [
      { name: 'f', fileName: 'a.txt', body: 'plain text' },
      { name: 'report', fileName: 'report.bin', contentType: 'multipart/mixed; boundary=innerB', body: nested },
    ]);
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...upload(body), headers: [['Allow', '204']] });
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File (in report.bin);');
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected; part=report.bin');
    const rec = await record;
    expect(rec.multipart).toEqual({ outcome: 'split', parts: 2 });
    expect(rec.parts).toEqual([
      { label: 'a.txt', file_name: 'a.txt', media_type: 'text/plain', bytes: 10, outcome: 'clean', threats: [] },
      { label: 'report.bin', file_name: 'report.bin', media_type: 'multipart/mixed', bytes: nested.length, outcome: 'infected', threats: ['EICAR-Test-File'] },
    ]);
  });

  it('EICAR sent base64-encoded in a part (Content-Transfer-Encoding, RFC 2045 §6.8) → blocked, naming the decoded part', async () => {
    // Receivers built on MIME libraries decode the part and store EICAR itself; the part as sent holds none.
    const body = formData(BOUNDARY, [
      { name: 'comment', body: TEXT },
      { name: 'upload', fileName: 'eicar.bin', contentType: 'application/octet-stream', headers: ['Content-Transfer-Encoding: base64'], body: base64Lines(BINARY) },
    ]);
    expect(body.includes(EICAR)).toBe(false);
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...upload(body), headers: [['Allow', '204']] });
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File (in eicar.bin (base64));');
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected; part="eicar.bin (base64)"');
    const rec = await record;
    expect(rec).toMatchObject({ verdict: 'infected', threats: ['EICAR-Test-File'], multipart: { outcome: 'split', parts: 3 } });
    expect(rec.parts?.map((p) => [p.label, p.bytes, p.outcome])).toEqual([
      ['field comment', Buffer.byteLength(TEXT), 'clean'],
      ['eicar.bin', Buffer.byteLength(base64Lines(BINARY)), 'clean'],
      ['eicar.bin (base64)', BINARY.length, 'infected'],
    ]);
  });

  it.each(['related', 'mixed'])('a multipart/%s upload (an API upload: JSON metadata, then the file in base64) → split and blocked', async (subtype) => {
    // Google Drive's multipart upload, SOAP MTOM, mail APIs: no form-data, no Content-Disposition.
    const body = formData(BOUNDARY, [
      { contentType: 'application/json; charset=UTF-8', body: '{"name":"report.bin"}' },
      { contentType: 'application/octet-stream', headers: ['Content-Transfer-Encoding: base64'], body: base64Lines(BINARY) },
    ]);
    expect(body.includes(EICAR)).toBe(false);
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...upload(body, `multipart/${subtype}; boundary=${BOUNDARY}; type="application/json"`), headers: [['Allow', '204']] });
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File (in part 2 (base64));');
    const rec = await record;
    expect(rec).toMatchObject({ verdict: 'infected', multipart: { outcome: 'split', parts: 3 } });
  });

  it('whitespace around the parts is nothing to scan: 204, and only the parts are logged', async () => {
    const body = formData(BOUNDARY, [{ name: 'f', fileName: 'a.txt', body: 'plain text' }], { preamble: '\r\n \t', epilogue: '\r\n\r\n' });
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...upload(body), headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
    const rec = await record;
    expect(rec.parts?.map((p) => p.label)).toEqual(['a.txt']);
    expect(rec.scans.map((s) => `${s.backend}:${s.part ?? '-'}:${s.outcome}`)).toEqual(['builtin:a.txt:clean']);
  });

  it('a multipart Content-Type without a boundary: the whole body is scanned, and the split failure is unsupported', async () => {
    const body = Buffer.concat([Buffer.from('not really multipart '), EICAR]);
    const infected = await exchange(srv.port, upload(body, 'multipart/form-data'));
    expect(infected.header('X-Infection-Found')).toBe('Type=0; Resolution=2; Threat=EICAR-Test-File;');
    const clean = await exchange(srv.port, upload(Buffer.from('just text'), 'multipart/form-data'));
    expect(clean.header('X-ICAP-Bridge-Decision')).toBe('block; reason=error-policy; errors=multipart:unsupported');
  });
});

describe('with scanParts and streaming backends', () => {
  let srv: TestServer;
  const batcher = new ScriptedBackend({ name: 'builtin', parts: true });
  const streamer = new ScriptedBackend({ name: 'streamer', streaming: true });
  beforeAll(async () => {
    srv = await startTestServer(
      `
cache: { enabled: false }
backends:
  builtin: { type: builtin }
  streamer: { type: builtin }
services:
  reqmod: { methods: [REQMOD], backends: [builtin, streamer] }
`,
      { backends: new Map<string, ScriptedBackend>([['builtin', batcher], ['streamer', streamer]]) },
    );
  });
  afterAll(() => srv.close());

  it('scanParts gets every part in one call (batch logged); a backend without it gets scan() per part; streams see the whole body', async () => {
    const body = infectedUpload();
    const record = srv.nextRecord();
    const r = await exchange(srv.port, { ...upload(body), preview: 100 });
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected; part=eicar.bin');
    // Distinct threat texts: the part-level finding names the part; the whole-body stream's does not.
    expect(r.headers.get('x-infection-found')).toEqual([
      'Type=0; Resolution=2; Threat=Scripted.Eicar;',
      'Type=0; Resolution=2; Threat=Scripted.Eicar (in eicar.bin);',
    ]);
    expect(batcher.partsCalls).toHaveLength(1);
    expect(batcher.partsCalls[0]!.map((p) => [p.label, p.fileName, p.bytes.length])).toEqual([
      ['field comment', undefined, Buffer.byteLength(TEXT)],
      ['eicar.bin', 'eicar.bin', BINARY.length],
    ]);
    expect(batcher.scanned).toEqual([]);
    expect(streamer.streamed).toHaveLength(1);
    expect(streamer.streamed[0]!.equals(body)).toBe(true);
    expect(streamer.scanned.map((b) => b.length)).toEqual([Buffer.byteLength(TEXT), BINARY.length]);
    const rec = await record;
    expect(rec.batch).toEqual({ backend: 'builtin', id: 'batch-1', endpoint: 'scripted:1', signed: true, verified: true });
    expect(rec.scans.map((s) => `${s.backend}:${s.part ?? 'whole body'}:${s.outcome}`)).toEqual([
      'streamer:whole body:infected',
      'builtin:field comment:clean',
      'streamer:field comment:clean',
      'builtin:eicar.bin:infected',
      'streamer:eicar.bin:infected',
    ]);
  });
});
