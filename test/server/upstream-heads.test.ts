/**
 * What an upstream ICAP backend is sent for content derived from the body (src/pipeline/
 * derived-meta.ts): a decoded body and each multipart part go out under an HTTP head that
 * describes them, not the original one. With the original head, an upstream that decodes or
 * splits (another icap-bridge) read decoded bytes as gzip, or one part as the whole form, and
 * blocked every clean gzip download and every upload ("corrupt", "truncated").
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpResponseHead } from '../helpers/icap-messages.js';
import { exchange } from '../helpers/icap-exchange.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { startFakeUpstream, type FakeRequest, type FakeUpstream } from '../backends/icap-fake-upstream.js';
import { formData } from '../pipeline/multipart-fixtures.js';

const BOUNDARY = 'b0undary';
const PAGE = Buffer.from('<p>nothing to see here</p>\n'.repeat(400));

let upstream: FakeUpstream;
let srv: TestServer;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  srv = await startTestServer(`
cache: { enabled: false }
backends:
  up: { type: icap, endpoints: ['${upstream.url()}'] }
services:
  respmod: { methods: [RESPMOD], backends: [up] }
  reqmod: { methods: [REQMOD], backends: [up] }
`);
});
afterAll(async () => {
  await srv.close();
  await upstream.close();
});

/** The encapsulated head of the message scanned: res-hdr for RESPMOD, req-hdr for REQMOD. */
const scannedHead = (r: FakeRequest): string => (r.method === 'RESPMOD' ? r.httpHeads[1]! : r.httpHeads[0]!);
const scans = (): FakeRequest[] => upstream.requests.filter((r) => r.method !== 'OPTIONS');

describe('heads sent upstream for derived content', () => {
  it('a decoded body: no Content-Encoding, the decoded length, the original Content-Type', async () => {
    const before = scans().length;
    const gz = gzipSync(PAGE);
    const r = await exchange(srv.port, { resHdr: httpResponseHead(gz.length, 'Content-Encoding: gzip\r\n'), body: [gz], headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
    const decoded = scans().slice(before).find((x) => x.body.equals(PAGE));
    expect(decoded, 'the decoded body was scanned upstream').toBeDefined();
    const head = scannedHead(decoded!);
    expect(head).not.toMatch(/content-encoding/i);
    expect(head).toContain(`Content-Length: ${PAGE.length}\r\n`);
    expect(head).not.toContain(`Content-Length: ${gz.length}\r\n`);
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it('each part of an upload: its own Content-Type, file name and length; the raw upload keeps its head', async () => {
    const before = scans().length;
    const body = formData(BOUNDARY, [
      { name: 'comment', body: 'hello' },
      { name: 'upload', fileName: 'report.pdf', contentType: 'application/pdf', body: '%PDF-1.4 not really' },
    ]);
    const reqHdr = `POST http://uploads.example/form HTTP/1.1\r\nHost: uploads.example\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n`;
    const r = await exchange(srv.port, { method: 'REQMOD', reqHdr, body: [body], headers: [['Allow', '204']] });
    expect(r.status).toBe(204);
    const sent = scans().slice(before);
    const pdf = sent.find((x) => x.body.toString() === '%PDF-1.4 not really');
    expect(pdf, 'the file part was scanned upstream').toBeDefined();
    const head = scannedHead(pdf!);
    expect(head).toMatch(/^POST http:\/\/uploads\.example\/form HTTP\/1\.1\r\n/);
    expect(head).toContain('Content-Type: application/pdf\r\n');
    expect(head).toContain('filename="report.pdf"');
    expect(head).toContain('Content-Length: 19\r\n');
    expect(head).not.toMatch(/multipart\/form-data/);
    // The whole upload, streamed as it arrived, goes with the head the client sent.
    const raw = sent.find((x) => x.body.equals(body));
    expect(raw, 'the raw upload was streamed upstream').toBeDefined();
    expect(scannedHead(raw!)).toBe(reqHdr);
  });
});
