/**
 * Range requests through a real Squid (Debian's 5.7) and config/examples/squid.conf: a download
 * fetched in pieces reaches icap-bridge as one 206 answer per piece, each scanned alone
 * (src/policy/byte-range.ts). The origin here serves single byte ranges of two 8 KiB-and-a-bit
 * files, one with EICAR in the middle, so two ranges can cut the signature in half.
 *
 * - The example file as it is: each piece is scanned as it is, and the access log names its range.
 *   EICAR cut in two reaches the client (the gap README.md's "Range requests" describes).
 * - A rule `match: { partial: true }, action: block`: every piece gets the block page, clean or
 *   not; a 206 that is the whole file (`Range: bytes=0-`) is scanned as a download.
 * - The example's `range_offset_limit none` line with Squid's cache allowed (and Recipe 2's
 *   delay-pool lines, without which Squid 5.7 stalls a range deep in a file over 64 KiB): Squid
 *   fetches the whole file, icap-bridge scans it, and Squid serves the piece; with
 *   `cache deny all` Squid forwards Range anyway.
 *
 * Squid is required (scripts/test-all.sh installs it); without it this file fails loudly.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EICAR } from '../helpers/icap-messages.js';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { exampleIcapLines, squidParse, startSquid, SQUID_PASSWORD, SQUID_USER, waitForAccess, type Squid, type SquidOptions } from '../helpers/squid.js';

/** EICAR at 4000..4067: `bytes=0-4033` and `bytes=4034-` cut it in half. */
const SPLIT = Buffer.concat([Buffer.alloc(4000, 'A'), EICAR, Buffer.alloc(4000, 'B')]);
const CLEAN = createHash('sha512').update('clean').digest().toString('hex').repeat(64).slice(0, SPLIT.length);
/** Over 64 KiB, where Squid 5.7 stalls RESPMOD bodies (bug 5352; squid-interop.md). */
const CLEAN_3M = Buffer.from(CLEAN.repeat(400));
const FILES: Record<string, Buffer> = { '/split.bin': SPLIT, '/clean.bin': Buffer.from(CLEAN), '/clean-3m.bin': CLEAN_3M };
const CUT = 4034;

interface Origin {
  base: string;
  /** The Range header of every request, '-' for none, in order. */
  ranges: string[];
  stop(): Promise<void>;
}

/** A single byte range (`bytes=a-b` or `bytes=a-`) answered 206, anything else the whole file. */
async function startRangeOrigin(): Promise<Origin> {
  const ranges: string[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    ranges.push(req.headers.range ?? '-');
    const file = FILES[(req.url ?? '/').split('?')[0]!];
    if (file === undefined) {
      res.writeHead(404, { 'Content-Length': 0 }).end();
      return;
    }
    const headers = { 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-store', 'Content-Type': 'application/octet-stream' };
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m === null) {
      res.writeHead(200, { ...headers, 'Content-Length': file.length }).end(file);
      return;
    }
    const first = Number(m[1]);
    const last = m[2] === '' ? file.length - 1 : Math.min(Number(m[2]), file.length - 1);
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${first}-${last}/${file.length}`, 'Content-Length': last - first + 1 });
    res.end(file.subarray(first, last + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ranges,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface Got {
  status: number;
  body: Buffer;
  contentRange: string | undefined;
}

/** GET through Squid, with a Range header when given; bounded by 15 s. */
function get(squid: Squid, url: string, range?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      Host: new URL(url).host,
      'Proxy-Authorization': `Basic ${Buffer.from(`${SQUID_USER}:${SQUID_PASSWORD}`).toString('base64')}`,
      ...(range !== undefined && { Range: range }),
    };
    const req = request({ host: '127.0.0.1', port: squid.port, path: url, headers, agent: false, timeout: 15_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), contentRange: res.headers['content-range'] }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

interface Stack {
  origin: Origin;
  bridge: ChildServer;
  squid: Squid;
  url(path: string): string;
  stop(): Promise<void>;
}

async function startStack(bridgeYaml: string, squid: Omit<SquidOptions, 'icapPort'>): Promise<Stack> {
  const origin = await startRangeOrigin();
  const bridge = await startChildServer(bridgeYaml);
  let n = 0;
  try {
    const proxy = await startSquid({ ...squid, icapPort: bridge.port });
    return {
      origin,
      bridge,
      squid: proxy,
      url: (path) => `${origin.base}${path}?n=${++n}`,
      async stop() {
        await proxy.stop();
        await bridge.stop();
        await origin.stop();
      },
    };
  } catch (err) {
    await bridge.stop();
    await origin.stop();
    throw err;
  }
}

const record = (stack: Stack, url: string): Promise<Record<string, unknown>> => waitForAccess(() => stack.bridge.accessRecords(), 'RESPMOD', url);

describe('the example squid.conf as it is: each piece is scanned alone', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack('', {});
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  }, 30_000);

  it('EICAR cut across two ranges reaches the client; the access log names each piece', async () => {
    const [first, second] = [stack.url('/split.bin'), stack.url('/split.bin')];
    const a = await get(stack.squid, first, `bytes=0-${CUT - 1}`);
    const b = await get(stack.squid, second, `bytes=${CUT}-`);
    expect([a.status, b.status]).toEqual([206, 206]);
    expect(Buffer.concat([a.body, b.body]).equals(SPLIT)).toBe(true);
    expect(await record(stack, first)).toMatchObject({ verdict: 'clean', partial: `bytes 0-${CUT - 1}/${SPLIT.length}` });
    expect(await record(stack, second)).toMatchObject({ verdict: 'clean', partial: `bytes ${CUT}-${SPLIT.length - 1}/${SPLIT.length}` });
  }, 30_000);

  it('a range holding the whole signature is blocked; so is a 206 that is the whole file (bytes=0-)', async () => {
    const piece = stack.url('/split.bin');
    expect((await get(stack.squid, piece, 'bytes=3900-4200')).status).toBe(403);
    expect(await record(stack, piece)).toMatchObject({ verdict: 'infected', partial: `bytes 3900-4200/${SPLIT.length}` });
    const whole = stack.url('/split.bin');
    expect((await get(stack.squid, whole, 'bytes=0-')).status).toBe(403);
    const rec = await record(stack, whole);
    expect(rec).toMatchObject({ verdict: 'infected' });
    expect(rec.partial).toBeUndefined();
  }, 30_000);

  it('Squid forwarded every Range to the origin (cache deny all)', () => {
    expect(stack.origin.ranges.filter((r) => r === '-')).toEqual([]);
  });
});

describe('a rule that blocks pieces (match: { partial: true }, action: block)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(
      `services:
  respmod:
    methods: [RESPMOD]
    rules:
      - name: no-pieces
        match: { partial: true }
        action: block
  reqmod:
    methods: [REQMOD]
`,
      {},
    );
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  }, 30_000);

  it('both halves of the cut EICAR get the block page, named by the rule', async () => {
    const [first, second] = [stack.url('/split.bin'), stack.url('/split.bin')];
    const a = await get(stack.squid, first, `bytes=0-${CUT - 1}`);
    const b = await get(stack.squid, second, `bytes=${CUT}-`);
    expect([a.status, b.status]).toEqual([403, 403]);
    expect(a.body.toString()).toContain('no-pieces');
    expect(await record(stack, first)).toMatchObject({ verdict: 'rule-blocked', rule: 'no-pieces', partial: `bytes 0-${CUT - 1}/${SPLIT.length}` });
    expect(await record(stack, second)).toMatchObject({ verdict: 'rule-blocked', rule: 'no-pieces' });
  }, 30_000);

  it('the cost: a clean piece is blocked too; a 206 that is the whole clean file arrives whole', async () => {
    expect((await get(stack.squid, stack.url('/clean.bin'), 'bytes=100-199')).status).toBe(403);
    const whole = await get(stack.squid, stack.url('/clean.bin'), 'bytes=0-');
    expect(whole.status).toBe(206);
    expect(whole.body.equals(FILES['/clean.bin']!)).toBe(true);
  }, 30_000);
});

describe('the example\'s range_offset_limit none line (with Recipe 2): Squid fetches whole files', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack('', { wholeRanges: true, memoryCache: true, recipe2: true });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  }, 30_000);

  it('is in the running squid.conf, and the example file with it uncommented parses cleanly', async () => {
    expect(stack.squid.conf).toMatch(/^range_offset_limit none$/m);
    const file = join(stack.squid.dir, 'example-ranges.conf');
    writeFileSync(file, exampleIcapLines(1344, false, undefined, false, true));
    const r = await squidParse(file);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(/ERROR|WARNING|FATAL|unrecognized|Bungled/i);
    expect(r.output).toContain('Processing: range_offset_limit none');
  });

  it('with the cache allowed, the origin is asked for the whole file, and both halves of the cut EICAR are blocked', async () => {
    const before = stack.origin.ranges.length;
    const a = await get(stack.squid, stack.url('/split.bin'), `bytes=0-${CUT - 1}`);
    const b = await get(stack.squid, stack.url('/split.bin'), `bytes=${CUT}-`);
    expect([a.status, b.status]).toEqual([403, 403]);
    expect(stack.origin.ranges.slice(before)).toEqual(['-', '-']);
  }, 30_000);

  it('a clean piece is served by Squid from the whole, scanned file: 206 with exactly those bytes', async () => {
    const url = stack.url('/clean.bin');
    const r = await get(stack.squid, url, 'bytes=100-199');
    expect(r.status).toBe(206);
    expect(r.contentRange).toBe(`bytes 100-199/${SPLIT.length}`);
    expect(r.body.equals(FILES['/clean.bin']!.subarray(100, 200))).toBe(true);
    const rec = await record(stack, url);
    expect(rec).toMatchObject({ verdict: 'clean', body_bytes: SPLIT.length });
    expect(rec.partial).toBeUndefined();
  }, 30_000);

  it('a piece at the end of a 3 MiB file arrives once the whole file went through icap-bridge', async () => {
    const url = stack.url('/clean-3m.bin');
    const r = await get(stack.squid, url, 'bytes=3000000-3000099');
    expect(r.status).toBe(206);
    expect(r.body.equals(CLEAN_3M.subarray(3_000_000, 3_000_100))).toBe(true);
    // Squid may hang up once it has the piece: the record says clean or aborted, never partial.
    const rec = await record(stack, url);
    expect(rec.body_bytes as number).toBeGreaterThanOrEqual(3_000_100);
    expect(rec.partial).toBeUndefined();
  }, 30_000);
});

describe('the same line with cache deny all', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack('', { wholeRanges: true });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  }, 30_000);

  it('does nothing: Squid forwards Range, and the halves of the cut EICAR pass (as README.md says)', async () => {
    const before = stack.origin.ranges.length;
    const a = await get(stack.squid, stack.url('/split.bin'), `bytes=0-${CUT - 1}`);
    const b = await get(stack.squid, stack.url('/split.bin'), `bytes=${CUT}-`);
    expect([a.status, b.status]).toEqual([206, 206]);
    expect(stack.origin.ranges.slice(before)).toEqual([`bytes=0-${CUT - 1}`, `bytes=${CUT}-`]);
  }, 30_000);
});
