/**
 * 206 Partial Content with a real Squid (Debian's 5.7): config/examples/squid.conf with its
 * `icap_206_enable on` line uncommented, in front of an icap-bridge whose respmod service sets
 * allow_204: false and allow_206: true (OPTIONS "Allow: 206"). Squid then offers Allow: 206 with
 * every preview; an allow settled by the preview (a URL rule here) is answered 206 with the
 * original HTTP head and use-original-body=0, and Squid delivers the body it holds: icap-bridge
 * reads only the preview. Scanned downloads are answered as before (echo, block page).
 *
 * Squid is required (scripts/test-all.sh installs it); without it this file fails loudly.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedSha256, ORIGIN_FILES } from '../helpers/origin-server.js';
import { exampleIcapLines, proxyRequest, squidParse, waitForAccess } from '../helpers/squid.js';
import { expectIntactDownload, startSquidStack, type SquidStack } from '../helpers/squid-stack.js';

let stack: SquidStack;

beforeAll(async () => {
  stack = await startSquidStack({
    bridgeYaml: `services:
  respmod:
    methods: [RESPMOD]
    allow_204: false
    allow_206: true
    rules:
      - name: trusted-downloads
        match: { url: ['*/clean-1m.bin?*', '*/clean-100m.bin?*'] }
        action: allow
  reqmod:
    methods: [REQMOD]
`,
    squid: { icap206: true },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe('Squid with icap_206_enable on', () => {
  it('runs the example file with its icap_206_enable line uncommented, which parses cleanly', async () => {
    expect(stack.squid.conf).toMatch(/^icap_206_enable on$/m);
    const file = join(stack.squid.dir, 'example-206.conf');
    writeFileSync(file, exampleIcapLines(1344, false, undefined, true));
    const r = await squidParse(file);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(/ERROR|WARNING|FATAL|unrecognized|Bungled/i);
    expect(r.output).toContain('Processing: icap_206_enable on');
  });

  it.each([
    ['/clean-1m.bin', 15_000],
    ['/clean-100m.bin', 60_000],
  ])('%s, allowed by a rule at the preview: ICAP 206, Squid delivers its own copy byte-identical', async (path, boundMs) => {
    const url = stack.urlFor(path);
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: boundMs });
    expectIntactDownload(r, path);
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    // Only the preview crossed the ICAP connection; nothing was echoed back.
    expect(rec).toMatchObject({ icap_status: 206, http_status: 200, verdict: 'rule-allowed', rule: 'trusted-downloads', body_bytes: 1024 });
    expect(rec.bytes_out as number).toBeLessThan(2048);
    console.log(`${path}: ${r.ms} ms through a 206, icap bytes_in=${String(rec.bytes_in)} bytes_out=${String(rec.bytes_out)}`);
  }, 90_000);

  it('a scanned clean download is still answered without 206 (Squid offered "Allow: 206" for the preview only)', async () => {
    const path = '/clean-64k.bin';
    const url = stack.urlFor(path);
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    expect(r.complete).toBe(true);
    expect(r.sha256).toBe(expectedSha256(path));
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec).toMatchObject({ icap_status: 200, verdict: 'clean', body_bytes: ORIGIN_FILES[path]!.size });
  });

  it('EICAR still gets the block page', async () => {
    const url = stack.urlFor('/eicar.com');
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 10_000 });
    expect(r.status).toBe(403);
    expect(r.text).toContain('EICAR-Test-File');
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec).toMatchObject({ icap_status: 200, http_status: 403, verdict: 'infected' });
  });

  it('Squid logged no ICAP failure', () => {
    expect(stack.squid.cacheLog()).not.toMatch(/ICAP.*(error|fail)|essential ICAP service is down|assertion/i);
    expect(stack.squid.accessLog()).not.toMatch(/ TCP_MISS\/5\d\d /);
  });
});
