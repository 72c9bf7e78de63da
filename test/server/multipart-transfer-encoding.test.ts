/**
 * A file_type rule meets the file inside a part sent with Content-Transfer-Encoding: an exe sent
 * base64-encoded in an upload part is the exe a receiver that decodes the part stores (RFC 2045
 * §6.8; spool-parts.ts returns the decoded form as a part, prepared-content.ts types it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange } from '../helpers/icap-exchange.js';
import { formUploadRequest, type RequestSpec } from '../helpers/icap-messages.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { base64Lines, formData } from '../pipeline/multipart-fixtures.js';

const EXE = Buffer.concat([Buffer.from('MZ\x90\x00\x03\x00\x00\x00', 'latin1'), Buffer.alloc(6000, 7)]);
const BOUNDARY = '----transferEncoding4c1e';

function upload(part: { fileName: string; headers: string[]; body: string | Buffer }): RequestSpec {
  const body = formData(BOUNDARY, [{ name: 'note', body: 'see attached' }, { name: 'tool', contentType: 'application/octet-stream', ...part }]);
  return formUploadRequest(body, BOUNDARY, 'rules');
}

describe('file_type rules on transfer-encoded upload parts', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer(`
cache: { enabled: false }
services:
  rules:
    methods: [REQMOD]
    rules:
      - { name: no-exe, match: { file_type: [exe] }, action: block }
`);
  });
  afterAll(() => srv.close());

  it('an exe sent base64-encoded in a part is blocked by a file_type: [exe] rule; the same text without the header is not', async () => {
    const record = srv.nextRecord();
    const encoded = upload({ fileName: 'setup.exe', headers: ['Content-Transfer-Encoding: base64'], body: base64Lines(EXE) });
    expect((await exchange(srv.port, encoded)).header('X-ICAP-Bridge-Decision')).toBe('block; reason=rule; rule=no-exe');
    expect(await record).toMatchObject({ rule: 'no-exe', verdict: 'rule-blocked' });
    // Without the header no receiver decodes the part: it is the base64 text it looks like.
    const plain = upload({ fileName: 'setup.txt', headers: [], body: base64Lines(EXE) });
    expect((await exchange(srv.port, plain)).header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
  });
});
