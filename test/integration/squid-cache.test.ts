/**
 * Squid with a cache in front of icap-bridge, and an origin whose files are cacheable
 * (`Cache-Control: public, max-age=3600`). Squid adapts responses before it stores them
 * (respmod_precache), so what icap-bridge answers is what Squid may keep and serve again. What
 * must hold:
 *
 * - A clean download is cached: the second and third requests for it are TCP_MEM_HITs,
 *   byte-identical (this also shows the cache is really on, so the checks below mean something).
 * - An infected download icap-bridge cut after a commit (commit on idle, the default; or
 *   trickle) is never kept: its body is short of its Content-Length (cut_after_commit:
 *   short-body), Squid releases the entry, and every later request goes back to the origin and is
 *   scanned again. A hit here would hand later clients the released bytes as a stored answer.
 * - The block page (Cache-Control: no-store) is not kept either: a later scan may differ.
 * - With collapsed_forwarding on, clients that join one infected fetch never get the file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedSha256 } from '../helpers/origin-server.js';
import { proxyRequest, type ProxyResult } from '../helpers/squid.js';
import { expectIntactDownload, startSquidStack, type SquidStack } from '../helpers/squid-stack.js';
import { waitFor } from '../helpers/wait.js';

const CACHEABLE = 'public, max-age=3600';
const TRICKLE = `services:
  respmod: { methods: [RESPMOD], trickle: { enabled: true, min_body_bytes: 100000, hold_back_bytes: 65536 } }
  reqmod: { methods: [REQMOD] }
`;

/** The block page for EICAR, or a transfer cut short: never the file. */
function expectNotDelivered(r: ProxyResult, path: string): void {
  expect(r.sha256, path).not.toBe(expectedSha256(path));
  if (r.status === 403) expect(r.text).toContain('EICAR-Test-File');
  else {
    expect(r.status, path).toBe(200);
    expect(r.complete, path).toBe(false);
  }
}

/** Squid's access.log lines for `url` (whole: strip_query_terms is off), once `count` are there. */
function accessLines(stack: SquidStack, url: string, count: number): Promise<string[]> {
  return waitFor(`${count} access.log lines for ${url}`, () => {
    const lines = stack.squid.accessLog().split('\n').filter((l) => l.includes(` ${url} `));
    return lines.length >= count ? lines : undefined;
  });
}

const originFetches = (stack: SquidStack, url: string): number => stack.origin.requests.filter((r) => `${stack.origin.base}${r.url}` === url).length;

/** The same URL three times in a row, a pause between (Squid stores an entry at its end). */
async function threeTimes(stack: SquidStack, url: string): Promise<ProxyResult[]> {
  const results: ProxyResult[] = [];
  for (let i = 0; i < 3; i++) {
    results.push(await proxyRequest(stack.squid.port, { url, timeoutMs: 20_000 }));
    await new Promise((r) => setTimeout(r, 200));
  }
  return results;
}

describe.each([
  ['the defaults (commit on idle)', ''],
  ['trickle', TRICKLE],
])('Squid with a memory cache, icap-bridge with %s', (_name, bridgeYaml) => {
  let stack: SquidStack;
  beforeAll(async () => {
    stack = await startSquidStack({ bridgeYaml, origin: { cacheControl: CACHEABLE }, squid: { memoryCache: true, extraConf: 'strip_query_terms off' } });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it('serves a clean download from its cache, whole', async () => {
    const url = stack.urlFor('/clean-1m.bin');
    for (const r of await threeTimes(stack, url)) expectIntactDownload(r, '/clean-1m.bin');
    const lines = await accessLines(stack, url, 3);
    expect(lines[0]).toContain('TCP_MISS/200');
    expect(lines.slice(1).every((l) => l.includes('TCP_MEM_HIT/200'))).toBe(true);
    expect(originFetches(stack, url)).toBe(1);
  }, 60_000);

  it('never keeps an infected download it cut: each request is fetched and scanned again', async () => {
    const url = stack.urlFor('/eicar-1m.bin');
    const results = await threeTimes(stack, url);
    console.log(`eicar-1m through a caching Squid: ${results.map((r) => `${r.status}/${r.bytes}/${r.complete ? 'whole' : 'cut'}`).join(' ')}`);
    for (const r of results) expectNotDelivered(r, '/eicar-1m.bin');
    // At least one was a cut (the case at stake), not only block pages.
    expect(results.some((r) => r.status === 200)).toBe(true);
    const lines = await accessLines(stack, url, 3);
    expect(lines.filter((l) => l.includes('HIT'))).toEqual([]);
    expect(originFetches(stack, url)).toBe(3);
  }, 90_000);

  it('never keeps the block page', async () => {
    const url = stack.urlFor('/eicar.com');
    for (const r of await threeTimes(stack, url)) expect(r.status).toBe(403);
    expect((await accessLines(stack, url, 3)).filter((l) => l.includes('HIT'))).toEqual([]);
    expect(originFetches(stack, url)).toBe(3);
  }, 60_000);
});

describe('Squid with a memory cache and collapsed_forwarding on', () => {
  let stack: SquidStack;
  beforeAll(async () => {
    stack = await startSquidStack({
      origin: { cacheControl: CACHEABLE },
      squid: { memoryCache: true, extraConf: 'strip_query_terms off\ncollapsed_forwarding on' },
    });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it('clients that join one infected fetch never get the file, and the next request is scanned again', async () => {
    const url = stack.urlFor('/eicar-1m.bin');
    const joined = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        await new Promise((r) => setTimeout(r, i * 20));
        return proxyRequest(stack.squid.port, { url, timeoutMs: 20_000 });
      }),
    );
    console.log(`eicar-1m, 4 at once: ${joined.map((r) => `${r.status}/${r.bytes}/${r.complete ? 'whole' : 'cut'}`).join(' ')}`);
    for (const r of joined) expectNotDelivered(r, '/eicar-1m.bin');
    const fetchedBefore = originFetches(stack, url);
    expectNotDelivered(await proxyRequest(stack.squid.port, { url, timeoutMs: 20_000 }), '/eicar-1m.bin');
    expect(originFetches(stack, url)).toBe(fetchedBefore + 1);
    // A clean one still collapses and is kept.
    const cleanUrl = stack.urlFor('/clean-1m.bin');
    const clean = await Promise.all([0, 1, 2].map(() => proxyRequest(stack.squid.port, { url: cleanUrl, timeoutMs: 20_000 })));
    for (const r of clean) expectIntactDownload(r, '/clean-1m.bin');
  }, 90_000);
});
