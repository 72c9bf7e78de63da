/**
 * Rules and hash lists meet the file a user gets, not its wrapping: an exe sent gzip-encoded or as
 * one part of an upload is the exe a `file_type: [exe]` rule or a deny hash names, and a
 * gzip-encoded web page is not a gzip archive (prepared-content.ts, policy-tracker.ts).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange } from '../helpers/icap-exchange.js';
import { formUploadRequest, type RequestSpec } from '../helpers/icap-messages.js';
import { ScriptedBackend } from '../helpers/scripted-backend.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { formData } from '../pipeline/multipart-fixtures.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const EXE = Buffer.concat([Buffer.from('MZ\x90\x00\x03\x00\x00\x00', 'latin1'), Buffer.alloc(6000, 7)]);
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(3000, 9)]);
const PAGE = Buffer.from(`<!doctype html><title>news</title>${'<p>story</p>'.repeat(400)}`);
/** Bytes a deny list names; nothing an engine would find. */
const KNOWN_BAD = Buffer.from('an ordinary looking document, hash known bad'.repeat(50));
/** Bytes an allow list names; the embedded engine would block them (EICAR inside). */
const KNOWN_GOOD = Buffer.concat([Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'), Buffer.alloc(100, 0x20)]);
const BOUNDARY = '----wrappedPolicy9f3a';

const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-wrapped-'));
const list = (name: string, lines: string[]): string => {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
};

function download(body: Buffer, encoding: string | null, service: string): RequestSpec {
  const resHdr = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n${encoding === null ? '' : `Content-Encoding: ${encoding}\r\n`}Content-Length: ${body.length}\r\n\r\n`;
  return { reqHdr: 'GET http://files.example/get HTTP/1.1\r\nHost: files.example\r\n\r\n', resHdr, body: [body], preview: 1024, headers: [['Allow', '204']], service };
}

function upload(parts: { name: string; fileName?: string; body: Buffer }[], service: string): RequestSpec {
  const body = formData(BOUNDARY, parts.map((p) => ({ ...p, contentType: 'application/octet-stream' })));
  return formUploadRequest(body, BOUNDARY, service);
}

const decisionOf = async (srv: TestServer, spec: RequestSpec): Promise<string | undefined> =>
  (await exchange(srv.port, spec)).header('X-ICAP-Bridge-Decision');

describe('rules and lists on encoded and multipart bodies', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer(`
cache: { enabled: false }
services:
  rules:
    methods: [RESPMOD, REQMOD]
    rules:
      - { name: trusted, match: { host: [trusted.example] }, action: allow }
      - { name: no-exe, match: { file_type: [exe] }, action: block }
      - { name: no-archives, match: { file_type: [gzip] }, action: block }
      - { name: images-pass, match: { file_type: [png] }, action: allow }
  lists:
    methods: [RESPMOD, REQMOD]
    lists:
      deny_sha256: [${list('deny.sha256', [sha256(KNOWN_BAD)])}]
      allow_sha256: [${list('allow.sha256', [sha256(KNOWN_GOOD)])}]
`);
  });
  afterAll(async () => {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a plain exe and a gzip-encoded one meet the same file_type rule', async () => {
    expect(await decisionOf(srv, download(EXE, null, 'rules'))).toBe('block; reason=rule; rule=no-exe');
    const record = srv.nextRecord();
    expect(await decisionOf(srv, download(gzipSync(EXE), 'gzip', 'rules'))).toBe('block; reason=rule; rule=no-exe');
    // Decoded to learn that, though no engine ran: the access line says so.
    expect(await record).toMatchObject({ rule: 'no-exe', verdict: 'rule-blocked', scans: [], decoding: { codings: ['gzip'], outcome: 'decoded' } });
  });

  it('a body whose outcome was final at the head is not decoded for the policy (nothing it holds could change it)', async () => {
    const spec = download(gzipSync(EXE), 'gzip', 'rules');
    const trusted = { ...spec, reqHdr: 'GET http://trusted.example/get HTTP/1.1\r\nHost: trusted.example\r\n\r\n' };
    delete (trusted as { preview?: number }).preview; // the whole body is read, then answered
    const record = srv.nextRecord();
    expect(await decisionOf(srv, trusted)).toBe('allow; reason=rule; rule=trusted');
    expect((await record).decoding).toBeUndefined();
  });

  it('a gzip-encoded web page is not a gzip archive; a gzip file without Content-Encoding is', async () => {
    expect(await decisionOf(srv, download(gzipSync(PAGE), 'gzip', 'rules'))).toBe('allow; reason=clean');
    expect(await decisionOf(srv, download(gzipSync(PAGE), null, 'rules'))).toBe('block; reason=rule; rule=no-archives');
  });

  it('an exe in one part of an upload meets the file_type rule; an upload of images only is allowed by the image rule', async () => {
    const mixed = upload([{ name: 'photo', fileName: 'a.png', body: PNG }, { name: 'tool', fileName: 'setup.exe', body: EXE }], 'rules');
    expect(await decisionOf(srv, mixed)).toBe('block; reason=rule; rule=no-exe');
    const images = upload([{ name: 'photo', fileName: 'a.png', body: PNG }, { name: 'photo2', fileName: 'b.png', body: PNG }], 'rules');
    expect(await decisionOf(srv, images)).toBe('allow; reason=rule; rule=images-pass');
    // An allow rule needs every file to qualify: one png beside text is scanned.
    const withText = upload([{ name: 'photo', fileName: 'a.png', body: PNG }, { name: 'note', body: Buffer.from('hello there, friend') }], 'rules');
    expect(await decisionOf(srv, withText)).toBe('allow; reason=clean');
  });

  it('a deny hash names the decoded body and any part of an upload', async () => {
    expect(await decisionOf(srv, download(KNOWN_BAD, null, 'lists'))).toBe('block; reason=deny-list; list=deny_sha256');
    expect(await decisionOf(srv, download(gzipSync(KNOWN_BAD), 'gzip', 'lists'))).toBe('block; reason=deny-list; list=deny_sha256');
    const record = srv.nextRecord();
    const carried = upload([{ name: 'note', body: Buffer.from('see attached') }, { name: 'doc', fileName: 'd.doc', body: KNOWN_BAD }], 'lists');
    expect(await decisionOf(srv, carried)).toBe('block; reason=deny-list; list=deny_sha256');
    expect(await record).toMatchObject({ list: 'deny_sha256', list_entry: sha256(KNOWN_BAD), verdict: 'deny-listed' });
  });

  it('an allow hash names the decoded body, but one known-good part does not allow the upload around it', async () => {
    expect(await decisionOf(srv, download(gzipSync(KNOWN_GOOD), 'gzip', 'lists'))).toBe('allow; reason=allow-list; list=allow_sha256');
    const carried = upload([{ name: 'note', body: Buffer.from('see attached') }, { name: 'doc', fileName: 'g.bin', body: KNOWN_GOOD }], 'lists');
    expect(await decisionOf(srv, carried)).toBe('block; reason=infected; part=g.bin');
  });
});

describe('a multipart upload whose rule is chosen at the end, on its parts', () => {
  const engine = new ScriptedBackend({ streaming: true });
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer(
      `
cache: { enabled: false }
services:
  rules:
    methods: [REQMOD]
    rules:
      - { name: no-exe, match: { file_type: [exe] }, action: block }
`,
      { backends: new Map([['builtin', engine]]) },
    );
  });
  afterAll(() => srv.close());

  it('is still scanned whole by the streaming backend (a marker only in a part header is found)', async () => {
    // Only the raw body holds the marker (the part's file name); no part's content does.
    const spec = upload([{ name: 'doc', fileName: 'BAD-BYTES.txt', body: Buffer.from('plain words') }], 'rules');
    expect(await decisionOf(srv, spec)).toBe('block; reason=infected');
  });
});
