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
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { EICAR } from '../helpers/icap-messages.js';
import { expectedSha256, fileBytes, ORIGIN_FILES, startOriginServer, type OriginServer } from '../helpers/origin-server.js';
import {
  EXAMPLE_CONF,
  exampleIcapLines,
  proxyRequest,
  requireSquid,
  squidParse,
  squidVersion,
  startSquid,
  SQUID_USER,
  waitForAccess,
  type Squid,
} from '../helpers/squid.js';

let bridge: ChildServer;
let squid: Squid;
let origin: OriginServer;
let n = 0;
/** A unique URL per request, so each access record can be found. */
const urlFor = (path: string): string => `${origin.base}${path}?n=${++n}`;
const records = (): Record<string, unknown>[] => bridge.accessRecords();

beforeAll(async () => {
  requireSquid();
  console.log(`squid ${await squidVersion()}`);
  origin = await startOriginServer();
  bridge = await startChildServer();
  squid = await startSquid({ icapPort: bridge.port });
}, 60_000);

afterAll(async () => {
  // Squid first: icap-bridge's graceful stop waits for Squid's persistent ICAP connections.
  await squid?.stop();
  await bridge?.stop();
  await origin?.stop();
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
    const file = join(squid.dir, 'example-recipe2.conf');
    writeFileSync(file, exampleIcapLines(1344, true));
    const r = await squidParse(file);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(problems);
    expect(r.output).toContain('Processing: delay_parameters 1 2000000000/2000000000');
  });

  it('is what the running Squid uses (its ICAP lines verbatim, bypass off)', () => {
    expect(squid.conf).toContain(`icap_service av_resp respmod_precache icap://127.0.0.1:${bridge.port}/respmod bypass=0`);
    expect(squid.conf).toContain(`icap_service av_req reqmod_precache icap://127.0.0.1:${bridge.port}/reqmod bypass=0`);
    expect(squid.conf).not.toMatch(/^delay_pools/m);
  });
});

describe('downloads through Squid (RESPMOD)', () => {
  it.each([
    ['/clean-64k.bin', 10_000],
    ['/clean-1m.bin', 10_000],
    ['/clean-100m.bin', 30_000],
  ])('%s arrives byte-identical, no stall (< %i ms)', async (path, boundMs) => {
    const size = ORIGIN_FILES[path]!.size;
    const expected = expectedSha256(path);
    const url = urlFor(path);
    const r = await proxyRequest(squid.port, { url, timeoutMs: boundMs });
    expect(r.error).toBeNull();
    expect(r.status).toBe(200);
    expect(r.complete).toBe(true);
    expect(r.bytes).toBe(size);
    expect(r.sha256).toBe(expected);
    expect(r.ms).toBeLessThan(boundMs);
    const rec = await waitForAccess(records, 'RESPMOD', url);
    expect(rec).toMatchObject({ verdict: 'clean', body_bytes: size, icap_status: 200 });
    console.log(`${path}: ${r.ms} ms, committed=${JSON.stringify(rec.committed ?? null)}`);
  }, 60_000);

  it('EICAR (68 bytes): 403 with the icap-bridge block page', async () => {
    const url = urlFor('/eicar.com');
    const r = await proxyRequest(squid.port, { url, timeoutMs: 10_000 });
    expect(r.status).toBe(403);
    expect(r.complete).toBe(true);
    expect(r.text).toContain('Blocked by icap-bridge');
    expect(r.text).toContain('EICAR-Test-File');
    const rec = await waitForAccess(records, 'RESPMOD', url);
    expect(rec).toMatchObject({ verdict: 'infected', reason: 'infected', http_status: 403, threats: ['EICAR-Test-File'] });
  });

  it('1 MiB with EICAR at the end (> 64 KiB): never reaches the client complete; logged as blocked', async () => {
    const path = '/eicar-1m.bin';
    const url = urlFor(path);
    const r = await proxyRequest(squid.port, { url, timeoutMs: 15_000 });
    const blockPage = r.status === 403 && r.text.includes('Blocked by icap-bridge') && r.text.includes('EICAR-Test-File');
    const truncated = r.status === 200 && (!r.complete || r.bytes < (r.contentLength ?? Infinity));
    expect(blockPage || truncated, JSON.stringify({ ...r, text: r.text.slice(0, 200) })).toBe(true);
    expect(r.sha256).not.toBe(expectedSha256(path));
    expect(r.bytes).toBeLessThan(ORIGIN_FILES[path]!.size);
    const rec = await waitForAccess(records, 'RESPMOD', url);
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
    const url = urlFor(`/upload/clean-${method}`);
    const r = await proxyRequest(squid.port, { method, url, body, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ bytes: body.length, sha256: expectedSha256('/clean-200k.bin') });
    const seen = origin.requests.filter((q) => q.url === new URL(url).pathname + new URL(url).search);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method, bytes: body.length, complete: true, sha256: expectedSha256('/clean-200k.bin') });
    const rec = await waitForAccess(records, 'REQMOD', url);
    expect(rec).toMatchObject({ verdict: 'clean', body_bytes: body.length });
  });

  it.each([
    ['POST', '/eicar.com'],
    ['PUT', '/eicar.com'],
    ['POST', '/eicar-1m.bin'],
  ])('%s of %s: 403 with the block page, never reaches the origin', async (method, file) => {
    const body = file === '/eicar.com' ? EICAR : fileBytes(file);
    const url = urlFor(`/upload/infected-${method}`);
    const target = new URL(url).pathname + new URL(url).search;
    const r = await proxyRequest(squid.port, { method, url, body, timeoutMs: 10_000 });
    expect(r.status).toBe(403);
    expect(r.text).toContain('Blocked by icap-bridge');
    expect(r.text).toContain('EICAR-Test-File');
    const rec = await waitForAccess(records, 'REQMOD', url);
    expect(rec).toMatchObject({ verdict: 'infected', http_status: 403, body_bytes: body.length });
    await new Promise((res) => setTimeout(res, 200));
    expect(origin.requests.filter((q) => q.url === target)).toEqual([]);
  });
});

describe('what Squid tells icap-bridge about the client', () => {
  it('X-Client-IP and X-Client-Username (plain, icap_client_username_encode off) are in the access log', async () => {
    const url = urlFor('/clean-64k.bin');
    const r = await proxyRequest(squid.port, { url, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    for (const method of ['REQMOD', 'RESPMOD'] as const) {
      const rec = await waitForAccess(records, method, url);
      expect(rec).toMatchObject({ x_client_ip: '127.0.0.1', x_client_username: SQUID_USER });
    }
  });

  it('without credentials Squid answers 407 itself and never asks icap-bridge', async () => {
    const url = urlFor('/clean-64k.bin');
    const r = await proxyRequest(squid.port, { url, timeoutMs: 10_000, auth: false });
    expect(r.status).toBe(407);
    await new Promise((res) => setTimeout(res, 200));
    expect(records().filter((rec) => rec.url === url)).toEqual([]);
  });
});
