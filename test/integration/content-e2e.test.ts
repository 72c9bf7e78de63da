/**
 * Issue 5 "Content" end to end: Debian's c-icap-client against the compiled server, with the
 * embedded engine and a private clamd (test/helpers/clamd.ts).
 *
 * - a gzip-encoded EICAR (RESPMOD, `-rhx "Content-Encoding: gzip"`) is blocked; a clean gzip body
 *   is echoed as the compressed bytes it was;
 * - a multipart upload (REQMOD POST, `-hx "Content-Type: multipart/form-data; boundary=..."`) with
 *   a clean text part and an EICAR binary part is blocked, naming the part;
 * - a 50 MB file scanned by clamd, sent twice: the second answer comes from the verdict cache.
 *   Both durations are printed (access log duration_ms and c-icap-client wall time).
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { HAVE_CLAMD, startClamd, type RunningClamd } from '../helpers/clamd.js';
import { EICAR } from '../helpers/icap-messages.js';
import { formData } from '../pipeline/multipart-fixtures.js';

const run = promisify(execFile);
const CLIENT = '/usr/bin/c-icap-client';
const BIG_BYTES = 50 * 1024 * 1024;
const BOUNDARY = '----c-icap-client-e2e-7d3f';

let clamd: RunningClamd;
let srv: ChildServer;
const file = (name: string): string => join(srv.dir, name);

beforeAll(async () => {
  await run(CLIENT, ['-V']).catch((err: unknown) => {
    throw new Error(`c-icap-client is required (apt-get install c-icap; scripts/test-all.sh does it): ${String(err)}`);
  });
  if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
  clamd = await startClamd({ streamMaxLength: 64 * 1024 * 1024 });
  srv = await startChildServer(`backends:
  builtin: { type: builtin }
  clamav: { type: clamd, endpoints: ["${clamd.tcpEndpoint}"], stream_max_bytes: 67108864 }
services:
  respmod: { methods: [RESPMOD], preview_bytes: 4096 }
  reqmod: { methods: [REQMOD], preview_bytes: 4096 }
  bigfiles: { methods: [RESPMOD], backends: [clamav], preview_bytes: 4096 }
cache: { enabled: true, max_entries: 100, ttl_s: 600 }
`);
  const page = (inner: Buffer): Buffer => Buffer.concat([Buffer.from('<html><body>'.repeat(500)), inner, Buffer.from('</body></html>'.repeat(500))]);
  writeFileSync(file('eicar.html.gz'), gzipSync(page(EICAR)));
  // Hex text of varied bytes: gzips to well over the 4096-byte preview, so it is not all preview.
  writeFileSync(file('clean.html.gz'), gzipSync(page(Buffer.from(pseudoRandom(30_000, 7).toString('hex')))));
  const binary = Buffer.concat([Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 37) & 0xff)), EICAR, Buffer.alloc(1024, 0x90)]);
  writeFileSync(
    file('upload.form'),
    formData(BOUNDARY, [
      { name: 'comment', body: 'a clean text part\n' },
      { name: 'attachment', fileName: 'eicar.com', contentType: 'application/octet-stream', body: binary },
    ]),
  );
  // 50 MB of pseudo-random bytes: nothing an engine could skip as trivial.
  writeFileSync(file('big.bin'), pseudoRandom(BIG_BYTES, 2463534242));
}, 60_000);

/** `bytes` (a multiple of 4) of xorshift32 output: reproducible, incompressible. */
function pseudoRandom(bytes: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let x = seed;
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

afterAll(async () => {
  await srv?.stop();
  await clamd?.stop();
});

async function client(args: string[]): Promise<{ out: string; ms: number }> {
  const started = performance.now();
  const { stdout, stderr } = await run(CLIENT, ['-i', '127.0.0.1', '-p', String(srv.port), ...args], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  return { out: stdout + stderr, ms: performance.now() - started };
}

describe('content end to end through c-icap-client', () => {
  it('a gzip-encoded EICAR is blocked', async () => {
    const url = 'http://origin.test/e2e/eicar.html';
    const { out } = await client(['-s', 'respmod', '-resp', url, '-f', file('eicar.html.gz'), '-rhx', 'Content-Encoding: gzip', '-v']);
    expect(out).toContain('X-Infection-Found: Type=0; Resolution=2; Threat=EICAR-Test-File;');
    expect(out).toContain('HTTP/1.1 403 Forbidden');
    expect(await srv.recordFor(url)).toMatchObject({ verdict: 'infected', decoding: { codings: ['gzip'], outcome: 'decoded' } });
  });

  it('a clean gzip body without 204 comes back as the compressed bytes sent', async () => {
    const url = 'http://origin.test/e2e/clean.html';
    const echoed = file('clean-echo.out');
    const { out } = await client(['-s', 'respmod', '-resp', url, '-f', file('clean.html.gz'), '-rhx', 'Content-Encoding: gzip', '-no204', '-o', echoed, '-v']);
    expect(out).toContain('ICAP/1.0 200 OK');
    expect(out).toContain('X-ICAP-Bridge-Decision: allow; reason=clean');
    expect(readFileSync(echoed).equals(readFileSync(file('clean.html.gz')))).toBe(true);
  });

  it('a multipart upload with a clean text part and an EICAR binary part is blocked, naming the part', async () => {
    const url = 'http://origin.test/e2e/upload';
    const page = file('upload-block.html');
    const { out } = await client([
      '-s', 'reqmod', '-req', url, '-method', 'POST', '-f', file('upload.form'),
      '-hx', `Content-Type: multipart/form-data; boundary=${BOUNDARY}`, '-o', page, '-v',
    ]);
    expect(out).toContain('X-Infection-Found: Type=0; Resolution=2; Threat=EICAR-Test-File (in eicar.com);');
    expect(out).toContain('X-ICAP-Bridge-Decision: block; reason=infected; part=eicar.com');
    expect(out).toContain('HTTP/1.1 403 Forbidden');
    expect(readFileSync(page, 'utf8')).toContain('EICAR-Test-File (in eicar.com)');
    const record = await srv.recordFor(url);
    expect(record).toMatchObject({ verdict: 'infected', multipart: { outcome: 'split', parts: 2 } });
    expect(record.parts).toEqual([
      expect.objectContaining({ label: 'field comment', outcome: 'clean' }),
      expect.objectContaining({ label: 'eicar.com', file_name: 'eicar.com', outcome: 'infected', threats: ['EICAR-Test-File'] }),
    ]);
  });

  it('a 50 MB file scanned by clamd, sent again, is answered from the verdict cache', async () => {
    const send = async (n: number) => {
      const url = `http://origin.test/e2e/big-${n}.bin`;
      const { out, ms } = await client(['-s', 'bigfiles', '-resp', url, '-f', file('big.bin'), '-v']);
      return { out, ms, record: await srv.recordFor(url, 30_000) };
    };
    const first = await send(1);
    const second = await send(2);
    console.log(
      `50 MB via clamd: first (scanned) ${first.record.duration_ms} ms in the access log, ${first.ms.toFixed(0)} ms for c-icap-client; ` +
        `second (cache ${String(second.record.cache)}) ${second.record.duration_ms} ms, ${second.ms.toFixed(0)} ms`,
    );
    expect(first.out).toContain('ICAP/1.0 204 No Content');
    expect(first.record).toMatchObject({ verdict: 'clean', cache: 'miss', body_bytes: BIG_BYTES, scans: [expect.objectContaining({ backend: 'clamav', outcome: 'clean' })] });
    expect(second.out).toContain('ICAP/1.0 204 No Content');
    expect(second.out).toContain('X-ICAP-Bridge-Decision: allow; reason=clean; cache=hit');
    expect(second.record).toMatchObject({ verdict: 'clean', cache: 'hit', body_bytes: BIG_BYTES, scans: [] });
  }, 180_000);
});
