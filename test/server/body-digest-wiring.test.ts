/**
 * A backend that looks bodies up by SHA-256 (Backend.usesBodySha256: MetaDefender's hash_lookup)
 * gets the digest the transaction computed as the body arrived, in ScanMeta.bodySha256, so a
 * spooled body is not read once more to hash it. With the verdict cache off, only such a backend
 * makes the transaction hash; the digest is of the content scanned (decoded, for a gzip body).
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpResponseHead, type RequestSpec } from '../helpers/icap-messages.js';
import { exchange } from '../helpers/icap-exchange.js';
import { ScriptedBackend } from '../helpers/scripted-backend.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const respmod = (body: Buffer, extra: Partial<RequestSpec> = {}): RequestSpec => ({ body: [body], headers: [['Allow', '204']], ...extra });

let srv: TestServer;
const lookup = new ScriptedBackend({ name: 'lookup', usesBodySha256: true });
const plain = new ScriptedBackend({ name: 'plain' });

beforeAll(async () => {
  srv = await startTestServer(
    `
cache: { enabled: false }
backends:
  lookup: { type: builtin }
  plain: { type: builtin }
services:
  both: { methods: [RESPMOD], backends: [lookup, plain] }
  plain_only: { methods: [RESPMOD], backends: [plain] }
  decoding: { methods: [RESPMOD], backends: [lookup] }
`,
    { backends: new Map<string, ScriptedBackend>([['lookup', lookup], ['plain', plain]]) },
  );
});
afterAll(() => srv.close());

async function send(service: string, spec: RequestSpec) {
  const record = srv.nextRecord();
  const response = await exchange(srv.port, { service, ...spec });
  return { response, record: await record };
}

describe('the body digest handed to backends that look it up', () => {
  it('a body spooled to disk: the lookup backend gets its SHA-256, the other backend gets none', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 'digest me ');
    const { response } = await send('both', respmod(body));
    expect(response.status).toBe(204);
    expect(lookup.metas.at(-1)!.bodySha256).toBe(sha256(body));
    expect(plain.metas.at(-1)!.bodySha256).toBeUndefined();
    expect(lookup.scanned.at(-1)!.equals(body)).toBe(true);
  });

  it('a service without such a backend hashes nothing (the cache is off)', async () => {
    await send('plain_only', respmod(Buffer.from('small and plain')));
    expect(plain.metas.at(-1)!.bodySha256).toBeUndefined();
  });

  it('a gzip body: the digest is of the decoded content, the bytes the backend scans', async () => {
    const decoded = Buffer.from('decoded content '.repeat(1000));
    const encoded = gzipSync(decoded);
    await send('decoding', respmod(encoded, { resHdr: httpResponseHead(encoded.length, 'Content-Encoding: gzip\r\n') }));
    expect(lookup.scanned.at(-1)!.equals(decoded)).toBe(true);
    expect(lookup.metas.at(-1)!.bodySha256).toBe(sha256(decoded));
  });
});
