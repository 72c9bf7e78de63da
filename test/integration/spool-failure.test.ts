/**
 * A spool that cannot store a body, by a real failure of the operating system: the compiled server
 * runs with a file size limit (RLIMIT_FSIZE, 2 MiB), so a temp file fails with EFBIG partway, as
 * it would with ENOSPC on a full disk or quota (found by hand with a 4 MiB tmpfs, same behaviour).
 *
 * Before the fix a transaction whose temp file failed waited for a 'drain' that never came: the
 * client got nothing until body_idle_ms (60 s), and Node.js warned of a listener leak as each body
 * chunk added another wait. What must hold now, for a body sent at once and for one sent as many
 * 1 KiB chunks:
 * - ICAP 500 (RFC 3507 §4.3.3: "Error on the ICAP server, such as 'out of disk space'") within a
 *   few seconds, then the connection closes;
 * - the access line says verdict error, reason spool-error; one error is logged, with
 *   ICAP_ERR_SPOOL_IO and EFBIG; no warning on stderr;
 * - the temp file is removed, and the server answers the next request (a body under the limit);
 * - through Squid 5.7, an upload the spool cannot hold is answered 500 by Squid at once and never
 *   reaches the origin, and Squid keeps using the service: 500 answers are not connection
 *   failures, so they do not count towards icap_service_failure_limit.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { startOriginServer } from '../helpers/origin-server.js';
import { proxyRequest, requireSquid, startSquid } from '../helpers/squid.js';
import { expectIntactDownload } from '../helpers/squid-stack.js';
import { TestClient } from '../helpers/icap-client.js';
import { httpResponseHead, respmodHead } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';

const LIMIT_KIB = 2048;
const BODY_BYTES = 8 * 1024 * 1024;
/** Far below body_idle_ms (60 s): only the spool's failure can end the transaction this soon. */
const ANSWER_MS = 5_000;

let srv: ChildServer;
beforeAll(async () => {
  srv = await startChildServer('', '  timeouts: { body_idle_ms: 60000 }\n', { fileSizeLimitKiB: LIMIT_KIB });
});
afterAll(async () => {
  await srv?.stop();
});

function chunked(body: Buffer, pieceBytes: number): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; at += pieceBytes) {
    const piece = body.subarray(at, at + pieceBytes);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

describe('a temp file that fails partway (EFBIG under RLIMIT_FSIZE)', () => {
  it.each([
    ['sent at once, in 64 KiB chunks', 64 * 1024],
    ['in 1 KiB chunks', 1024],
  ])('an 8 MiB body %s: 500 within seconds, then close; logged as spool-error; the file removed', async (_name, pieceBytes) => {
    const logsBefore = srv.logs().length;
    const body = Buffer.alloc(BODY_BYTES, 'f');
    // The Content-Length sends the body to the temp file from its first byte.
    const head = respmodHead(`http://example.com/efbig-${pieceBytes}.bin`, httpResponseHead(BODY_BYTES), [['Allow', '204']]);
    const c = await TestClient.connect(srv.port);
    const started = performance.now();
    c.write(head, chunked(body, pieceBytes));
    const r = await c.read(ANSWER_MS);
    const answeredMs = performance.now() - started;
    expect(r.status).toBe(500);
    expect(r.header('Connection')).toBe('close');
    await c.waitClosed(3000);
    console.log(`${pieceBytes}-byte chunks: 500 after ${answeredMs.toFixed(0)} ms`);

    expect(await srv.recordFor(`http://example.com/efbig-${pieceBytes}.bin`)).toMatchObject({ verdict: 'error', reason: 'spool-error' });
    const logs = srv.logs().slice(logsBefore);
    const errors = logs.filter((l) => (l.level as number) >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'ICAP_ERR_SPOOL_IO', msg: 'spool failed: the body could not be stored, answered 500' });
    expect(JSON.stringify(errors[0]!.err)).toContain('EFBIG');
    expect(srv.stderr()).not.toMatch(/Warning/);
    await waitFor('an empty spool', () => readdirSync(srv.spoolDir).length === 0, { timeoutMs: 3000 });

    // Still serving: a body under the limit goes through the spool and is answered 204.
    const next = await TestClient.connect(srv.port);
    const small = Buffer.alloc(1536 * 1024, 's');
    next.write(respmodHead('http://example.com/under-the-limit.bin', httpResponseHead(small.length), [['Allow', '204']]), chunked(small, 64 * 1024));
    expect((await next.read(ANSWER_MS)).status).toBe(204);
    next.close();
  });
});

describe('through Squid 5.7', () => {
  it('an upload the spool cannot hold: 500 from Squid at once, nothing at the origin; downloads go on', async () => {
    requireSquid();
    const origin = await startOriginServer();
    try {
      const squid = await startSquid({ icapPort: srv.port });
      try {
        for (let i = 0; i < 3; i++) {
          const url = `${origin.base}/upload?efbig=${i}`;
          const up = await proxyRequest(squid.port, { method: 'POST', url, body: Buffer.alloc(BODY_BYTES, 'u'), timeoutMs: ANSWER_MS });
          expect(up.status, url).toBe(500);
          const down = await proxyRequest(squid.port, { url: `${origin.base}/clean-1m.bin?efbig=${i}`, timeoutMs: ANSWER_MS });
          expectIntactDownload(down, '/clean-1m.bin');
        }
        expect(origin.requests.filter((r) => r.method === 'POST')).toEqual([]);
        expect(squid.cacheLog()).not.toMatch(/suspend/i);
      } finally {
        await squid.stop();
      }
    } finally {
      await origin.stop();
    }
  });
});
