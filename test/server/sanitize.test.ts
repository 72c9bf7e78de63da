/** A backend that returns a sanitized copy: the client gets the copy with a head that fits it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult } from '../../src/backends/backend.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { buildRequest, httpResponseHead } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let disposed = 0;
const copy = Buffer.from('%PDF-1.7 sanitized copy');
const cdr: Backend = {
  name: 'builtin',
  version: 'fake-cdr/1',
  scan: async (): Promise<BackendResult> => ({
    outcome: 'sanitized',
    backend: 'builtin',
    durationMs: 1,
    body: spooledBodyFromBuffer(copy),
    threats: [],
    fileName: 'report.pdf',
    contentType: 'application/pdf',
    dispose: async () => {
      disposed++;
    },
  }),
  status: () => [{ endpoint: 'fake', healthy: true, inFlight: 0, queued: 0 }],
  close: async () => {},
};

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer('', { backends: new Map([['builtin', cdr]]) });
});
afterAll(() => srv.close());

describe('sanitized answers', () => {
  it('RESPMOD: 200 with the rewritten head and the copy, even when 204 was allowed', async () => {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ resHdr: httpResponseHead(5000, 'Content-Disposition: attachment; filename="report.docm"\r\n'), body: ['x'.repeat(5000)], headers: [['Allow', '204']] }).first);
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.body!.equals(copy)).toBe(true);
    expect(r.resHdr).toContain(`Content-Length: ${copy.length}\r\n`);
    expect(r.resHdr).toContain('Content-Type: application/pdf\r\n');
    expect(r.resHdr).toContain('Content-Disposition: attachment; filename="report.pdf"');
    expect(r.resHdr).not.toContain('Content-Length: 5000');
    expect(r.header('X-ICAP-Bridge-Decision')).toBe('sanitize; reason=sanitized');
    expect(srv.records.at(-1)).toMatchObject({ verdict: 'sanitized', icap_status: 200 });
    expect(disposed).toBe(1);
    c.close();
  });

  it('REQMOD: the upload is replaced by the copy', async () => {
    const c = await TestClient.connect(srv.port);
    const reqHdr = 'POST http://example.com/upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\n';
    c.write(buildRequest({ method: 'REQMOD', reqHdr, body: ['y'.repeat(100)] }).first);
    const r = await c.read();
    expect(r.encapsulated).toMatch(/^req-hdr=0, req-body=\d+$/);
    expect(r.reqHdr).toMatch(/^POST http:\/\/example\.com\/upload HTTP\/1\.1\r\n/);
    expect(r.reqHdr).toContain(`Content-Length: ${copy.length}\r\n`);
    expect(r.body!.equals(copy)).toBe(true);
    expect(disposed).toBe(2);
    c.close();
  });
});
