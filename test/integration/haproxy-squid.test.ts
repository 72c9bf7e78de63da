/**
 * A rolling restart as sites run it: Squid 5.7 (config/examples/squid.conf) → HAProxy
 * (config/examples/haproxy.cfg, its own 2 s check interval) → two icap-bridge instances. While
 * eight clients download clean and infected files through Squid, each instance in turn is stopped
 * with SIGTERM, left down until HAProxy has marked it DOWN, started again on its port, and taken
 * back once HAProxy marks it UP.
 *
 * What must hold: not one clean download fails or arrives short (no 500 from Squid, whose
 * services are bypass=0), no infected file arrives whole, Squid never suspends the service, no
 * icap-bridge logs an error, and each restarted instance serves again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { expectedSha256, ORIGIN_FILES, startOriginServer, type OriginServer } from '../helpers/origin-server.js';
import { proxyRequest, startSquid, type Squid } from '../helpers/squid.js';
import { waitFor } from '../helpers/wait.js';

/** config/examples/haproxy.cfg's own `inter`: DOWN after fall × inter (4 s), UP after rise × inter. */
const EXAMPLE_INTER_MS = 2000;
const CLIENTS = 8;
const FILES = ['/clean-64k.bin', '/clean-1m.bin', '/eicar.com', '/eicar-1m.bin'];

let origin: OriginServer;
const bridges: ChildServer[] = [];
let haproxy: Haproxy;
let squid: Squid;

beforeAll(async () => {
  origin = await startOriginServer();
  bridges.push(await startChildServer(), await startChildServer());
  haproxy = await startHaproxy(bridges[0]!.port, bridges[1]!.port, EXAMPLE_INTER_MS);
  squid = await startSquid({ icapPort: haproxy.frontPort });
}, 60_000);

afterAll(async () => {
  await squid?.stop();
  await haproxy?.stop();
  for (const b of bridges) await b.stop();
  await origin?.stop();
}, 60_000);

const count = (text: string, needle: string): number => text.split(needle).length - 1;

describe('Squid → HAProxy → two icap-bridge instances, restarted one after the other', () => {
  it('no download is lost or let through, and both instances serve again', async () => {
    let n = 0;
    let going = true;
    const seen: Record<string, number> = {};
    const problems: string[] = [];
    const client = async (): Promise<void> => {
      for (let k = 0; going && k < 100_000; k++) {
        const path = FILES[n % FILES.length]!;
        const r = await proxyRequest(squid.port, { url: `${origin.base}${path}?n=${++n}`, timeoutMs: 30_000 });
        const whole = r.status === 200 && r.complete && r.bytes === ORIGIN_FILES[path]!.size && r.sha256 === expectedSha256(path);
        const what = `${path} ${whole ? 'whole' : r.status === 403 ? '403' : `${r.status}${r.complete ? '' : ' cut'}`}`;
        seen[what] = (seen[what] ?? 0) + 1;
        const infected = path.includes('eicar');
        if (infected === whole) problems.push(`${new Date().toISOString()} ${what} ${r.error ?? ''}`);
      }
    };
    const traffic = Array.from({ length: CLIENTS }, client);

    const served = (b: ChildServer): number => b.accessRecords().filter((r) => r.method === 'RESPMOD').length;
    for (const [i, name] of [[0, 'icap1'], [1, 'icap2']] as const) {
      await new Promise((r) => setTimeout(r, 1000));
      const port = bridges[i]!.port;
      const downBefore = count(haproxy.output(), `${name} is DOWN`);
      const upBefore = count(haproxy.output(), `${name} is UP`);
      expect(await bridges[i]!.stop('SIGTERM')).toBe(0);
      await waitFor(`HAProxy to mark ${name} DOWN`, () => count(haproxy.output(), `${name} is DOWN`) > downBefore, { timeoutMs: 15_000 });
      bridges[i] = await startChildServer('', '', { port });
      await waitFor(`HAProxy to mark ${name} UP again`, () => count(haproxy.output(), `${name} is UP`) > upBefore, { timeoutMs: 15_000 });
      await waitFor(`the restarted ${name} to serve`, () => served(bridges[i]!) > 0, { timeoutMs: 10_000 });
    }
    going = false;
    await Promise.all(traffic);
    console.log(`rolling restart: ${JSON.stringify(seen)}`);

    expect(problems.slice(0, 20)).toEqual([]);
    for (const path of FILES) expect(Object.keys(seen).some((k) => k.startsWith(path)), path).toBe(true);
    expect(squid.cacheLog()).not.toMatch(/suspend/i);
    for (const b of bridges) expect(b.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
  }, 120_000);
});
