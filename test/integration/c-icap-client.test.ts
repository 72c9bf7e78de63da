/**
 * Debian's c-icap-client (package c-icap) against the real server process. c-icap-client uses
 * min(server Preview, -w) as its preview, so the server advertises 4096 here and -w picks 0,
 * 1024 or 4096. The project's test setup (scripts/test-all.sh) installs c-icap; if it is missing
 * this file fails loudly rather than skipping.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EICAR } from '../helpers/icap-messages.js';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';


const run = promisify(execFile);
const CLIENT = '/usr/bin/c-icap-client';

let srv: ChildServer;
let cleanSmall: string;
let cleanLarge: string;
let eicar: string;

beforeAll(async () => {
  await run(CLIENT, ['-V']).catch((err: unknown) => {
    throw new Error(`c-icap-client is required (apt-get install c-icap; scripts/test-all.sh does it): ${String(err)}`);
  });
  srv = await startChildServer(`services:
  respmod: { methods: [RESPMOD], aliases: [OMSScanResp-AV], preview_bytes: 4096 }
  reqmod: { methods: [REQMOD], aliases: [OMSScanReq-AV], preview_bytes: 4096 }
`);
  cleanSmall = join(srv.dir, 'small.txt');
  writeFileSync(cleanSmall, 'just a harmless text file\n');
  cleanLarge = join(srv.dir, 'large.bin');
  const large = Buffer.alloc(20_000);
  for (let i = 0; i < large.length; i++) large[i] = (i * 7919) & 0xff;
  writeFileSync(cleanLarge, large);
  eicar = join(srv.dir, 'eicar.com');
  writeFileSync(eicar, EICAR);
});
afterAll(async () => {
  await srv?.stop();
});

async function client(args: string[]): Promise<string> {
  const { stdout, stderr } = await run(CLIENT, ['-i', '127.0.0.1', '-p', String(srv.port), ...args], { timeout: 20_000 });
  return stdout + stderr;
}

describe('c-icap-client', () => {
  it('OPTIONS', async () => {
    const out = await client(['-s', 'respmod']);
    expect(out).toContain('Allow 204: Yes');
    expect(out).toContain('Preview: 4096');
    expect(out).toContain('Keep alive: Yes');
    expect(out).toMatch(/ISTag: "IB-[A-Za-z0-9_-]+"/);
    expect(out).toContain('Methods: RESPMOD');
  });

  it('REQMOD with a clean POST body: 204, and with -no204 an echo of the body', async () => {
    const out = await client(['-s', 'reqmod', '-req', 'http://example.com/upload', '-method', 'POST', '-f', cleanLarge, '-v']);
    expect(out).toContain('ICAP/1.0 204 No Content');
    const echoed = join(srv.dir, 'reqmod-echo.out');
    const out2 = await client(['-s', 'reqmod', '-req', 'http://example.com/upload', '-method', 'POST', '-f', cleanLarge, '-no204', '-o', echoed, '-v']);
    expect(out2).toContain('ICAP/1.0 200 OK');
    expect(out2).toContain('POST http://example.com/upload');
    expect(readFileSync(echoed).equals(readFileSync(cleanLarge))).toBe(true);
  });

  it('REQMOD with an EICAR upload: blocked with a 403 page', async () => {
    const out = await client(['-s', 'OMSScanReq-AV', '-req', 'http://example.com/upload', '-method', 'POST', '-f', eicar, '-v']);
    expect(out).toContain('X-Infection-Found: Type=0; Resolution=2; Threat=EICAR-Test-File;');
    expect(out).toContain('HTTP/1.1 403 Forbidden');
    expect(out).toContain('http://example.com/upload');
  });

  describe.each([0, 1024, 4096])('RESPMOD with preview %i', (preview) => {
    it('clean file → 204', async () => {
      const url = `http://example.com/clean-${preview}.bin`;
      const out = await client(['-s', 'respmod', '-resp', url, '-f', cleanLarge, '-w', String(preview), '-v']);
      expect(out).toContain('ICAP/1.0 204 No Content');
      expect(await srv.recordFor(url)).toMatchObject({ verdict: 'clean', preview, body_bytes: 20_000 });
    });

    it('clean file with -no204 → 200 echo, byte-identical (unless the preview held it all)', async () => {
      const output = join(srv.dir, `echo-${preview}.out`);
      const out = await client(['-s', 'respmod', '-f', cleanLarge, '-w', String(preview), '-no204', '-o', output, '-v']);
      expect(out).toContain('ICAP/1.0 200 OK');
      expect(readFileSync(output).equals(readFileSync(cleanLarge))).toBe(true);
    });

    it('small clean file with -no204 → 204 when it fits the preview (RFC 3507 §4.5), echo otherwise', async () => {
      const output = join(srv.dir, `small-${preview}.out`);
      const out = await client(['-s', 'respmod', '-f', cleanSmall, '-w', String(preview), '-no204', '-o', output, '-v']);
      if (preview > 0) expect(out).toContain('ICAP/1.0 204 No Content');
      else {
        expect(out).toContain('ICAP/1.0 200 OK');
        expect(readFileSync(output, 'utf8')).toBe('just a harmless text file\n');
      }
    });

    it.each([[[]], [['-no204']]])('EICAR %j → 200 with the 403 block page and X-Infection-Found', async (extra) => {
      const output = join(srv.dir, `eicar-${preview}-${extra.length}.out`);
      const url = `http://example.com/eicar-${preview}-${extra.length}.com`;
      const out = await client(['-s', 'respmod', '-resp', url, '-f', eicar, '-w', String(preview), ...extra, '-o', output, '-v']);
      expect(out).toContain('ICAP/1.0 200 OK');
      expect(out).toContain('X-Infection-Found: Type=0; Resolution=2; Threat=EICAR-Test-File;');
      expect(out).toContain('HTTP/1.1 403 Forbidden');
      const page = readFileSync(output, 'utf8');
      expect(page).toContain('Blocked by icap-bridge');
      expect(page).toContain('EICAR-Test-File');
      expect(await srv.recordFor(url)).toMatchObject({ verdict: 'infected', threats: ['EICAR-Test-File'], http_status: 403 });
    });
  });

});
