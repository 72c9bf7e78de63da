/**
 * Real Squid (Debian's package `squid`, 5.7 on bookworm) in front of the compiled icap-bridge,
 * end to end: a node:http client → Squid (Basic auth, no cache) → a local origin, with Squid
 * sending every request (REQMOD) and response (RESPMOD) to icap-bridge through the ICAP lines of
 * config/examples/squid.conf (bypass=0). icap-bridge runs its defaults, so Recipe 1 ("commit on
 * idle", ../shared/specs/squid-interop.md) keeps bodies above 64 KiB moving.
 *
 * Time bounds (measured here on 2 cores: 64 KiB and 1 MiB ≈ 0.1-0.2 s, 100 MiB ≈ 5-6 s):
 *   clean 64 KiB and 1 MiB < 10 s, clean 100 MiB < 30 s. Squid's stall (bug 5352) would show as
 *   a timeout, since Squid then sends nothing until a side gives up.
 *
 * Squid is required (scripts/test-all.sh installs it); without it this file fails loudly.
 * squid-resilience.test.ts covers Recipe 2 (delay pool) and restarting icap-bridge under load.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EICAR } from '../helpers/icap-messages.js';
import { expectedSha256, fileBytes, ORIGIN_FILES } from '../helpers/origin-server.js';
import { EXAMPLE_CONF, exampleIcapLines, proxyRequest, squidParse, SQUID_USER, waitForAccess } from '../helpers/squid.js';
import { expectIntactDownload, startSquidStack, type SquidStack } from '../helpers/squid-stack.js';

let stack: SquidStack;

beforeAll(async () => {
  stack = await startSquidStack();
}, 60_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe('config/examples/squid.conf', () => {
  const problems = /ERROR|WARNING|FATAL|unrecognized|Bungled/i;

  it('parses cleanly with squid -k parse', async () => {
    const r = await squidParse(EXAMPLE_CONF);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(problems);
    expect(r.output).toContain('Processing: icap_service av_resp respmod_precache icap://127.0.0.1:1344/respmod bypass=0');
  });

  it('parses cleanly with its Recipe 2 lines uncommented', async () => {
    const file = join(stack.squid.dir, 'example-recipe2.conf');
    writeFileSync(file, exampleIcapLines(1344, true));
    const r = await squidParse(file);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(problems);
    expect(r.output).toContain('Processing: delay_parameters 1 2000000000/2000000000');
  });

  it('is what the running Squid uses (its ICAP lines verbatim, bypass off)', () => {
    expect(stack.squid.conf).toContain(`icap_service av_resp respmod_precache icap://127.0.0.1:${stack.bridge.port}/respmod bypass=0`);
    expect(stack.squid.conf).toContain(`icap_service av_req reqmod_precache icap://127.0.0.1:${stack.bridge.port}/reqmod bypass=0`);
    expect(stack.squid.conf).not.toMatch(/^delay_pools/m);
  });
});

describe('downloads through Squid (RESPMOD)', () => {
  it.each([
    ['/clean-64k.bin', 10_000],
    ['/clean-1m.bin', 10_000],
    ['/clean-100m.bin', 30_000],
  ])('%s arrives byte-identical, no stall (< %i ms)', async (path, boundMs) => {
    const size = ORIGIN_FILES[path]!.size;
    expectedSha256(path); // computed (and cached) before the clock starts
    const url = stack.urlFor(path);
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: boundMs });
    expectIntactDownload(r, path);
    expect(r.ms).toBeLessThan(boundMs);
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec).toMatchObject({ verdict: 'clean', body_bytes: size, icap_status: 200 });
    console.log(`${path}: ${r.ms} ms, committed=${JSON.stringify(rec.committed ?? null)}`);
  }, 60_000);

  it('EICAR (68 bytes): 403 with the icap-bridge block page', async () => {
    const url = stack.urlFor('/eicar.com');
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 10_000 });
    expect(r.status).toBe(403);
    expect(r.complete).toBe(true);
    expect(r.text).toContain('Blocked by icap-bridge');
    expect(r.text).toContain('EICAR-Test-File');
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec).toMatchObject({ verdict: 'infected', reason: 'infected', http_status: 403, threats: ['EICAR-Test-File'] });
  });

  it('1 MiB with EICAR at the end (> 64 KiB): never reaches the client complete; logged as blocked', async () => {
    const path = '/eicar-1m.bin';
    const url = stack.urlFor(path);
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 15_000 });
    const blockPage = r.status === 403 && r.text.includes('Blocked by icap-bridge') && r.text.includes('EICAR-Test-File');
    const truncated = r.status === 200 && (!r.complete || r.bytes < (r.contentLength ?? Infinity));
    expect(blockPage || truncated, JSON.stringify({ ...r, text: r.text.slice(0, 200) })).toBe(true);
    expect(r.sha256).not.toBe(expectedSha256(path));
    expect(r.bytes).toBeLessThan(ORIGIN_FILES[path]!.size);
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec.verdict).toBe('infected');
    expect(['blocked-by-truncation', 'infected']).toContain(rec.reason);
    console.log(
      `${path}: HTTP ${r.status}, ${r.bytes}/${r.contentLength} bytes, complete=${r.complete}, error=${r.error}, ` +
        `reason=${String(rec.reason)}, committed=${JSON.stringify(rec.committed ?? null)}`,
    );
  });
});

describe('uploads through Squid (REQMOD)', () => {
  it.each(['POST', 'PUT'])('%s of a clean 200 KiB file reaches the origin byte-identical', async (method) => {
    const body = fileBytes('/clean-200k.bin');
    const url = stack.urlFor(`/upload/clean-${method}`);
    const r = await proxyRequest(stack.squid.port, { method, url, body, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ bytes: body.length, sha256: expectedSha256('/clean-200k.bin') });
    const seen = stack.origin.requests.filter((q) => q.url === new URL(url).pathname + new URL(url).search);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method, bytes: body.length, complete: true, sha256: expectedSha256('/clean-200k.bin') });
    const rec = await waitForAccess(stack.records, 'REQMOD', url);
    expect(rec).toMatchObject({ verdict: 'clean', body_bytes: body.length });
  });

  it.each([
    ['POST', '/eicar.com'],
    ['PUT', '/eicar.com'],
    ['POST', '/eicar-1m.bin'],
  ])('%s of %s: 403 with the block page, never reaches the origin', async (method, file) => {
    const body = file === '/eicar.com' ? EICAR : fileBytes(file);
    const url = stack.urlFor(`/upload/infected-${method}`);
    const target = new URL(url).pathname + new URL(url).search;
    const r = await proxyRequest(stack.squid.port, { method, url, body, timeoutMs: 10_000 });
    expect(r.status).toBe(403);
    expect(r.text).toContain('Blocked by icap-bridge');
    expect(r.text).toContain('EICAR-Test-File');
    const rec = await waitForAccess(stack.records, 'REQMOD', url);
    expect(rec).toMatchObject({ verdict: 'infected', http_status: 403, body_bytes: body.length });
    await new Promise((res) => setTimeout(res, 200));
    expect(stack.origin.requests.filter((q) => q.url === target)).toEqual([]);
  });
});

describe('what Squid tells icap-bridge about the client', () => {
  it('X-Client-IP and X-Client-Username (plain, icap_client_username_encode off) are in the access log', async () => {
    const url = stack.urlFor('/clean-64k.bin');
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    for (const method of ['REQMOD', 'RESPMOD'] as const) {
      const rec = await waitForAccess(stack.records, method, url);
      expect(rec).toMatchObject({ x_client_ip: '127.0.0.1', x_client_username: SQUID_USER });
    }
  });

  it('without credentials Squid answers 407 itself and never asks icap-bridge', async () => {
    const url = stack.urlFor('/clean-64k.bin');
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 10_000, auth: false });
    expect(r.status).toBe(407);
    await new Promise((res) => setTimeout(res, 200));
    expect(stack.records().filter((rec) => rec.url === url)).toEqual([]);
  });
});
