/**
 * The mixed traffic of the Squid soaks (squid-soak.test.ts, reload-under-load.test.ts): clients
 * that, until a deadline, download clean and infected origin files (origin-server.ts) and upload
 * bodies of 1 B to 3 MB, a quarter of them with EICAR inside, all through Squid. Each answer is
 * counted by kind ("download clean: whole", "upload infected: 403", ...), and what must never
 * happen is listed as a problem: an infected file or upload getting through whole, or a clean
 * one not arriving whole (unless its client gave up on purpose).
 */
import { EICAR } from './icap-messages.js';
import { expectedSha256, ORIGIN_FILES } from './origin-server.js';
import { proxyRequest } from './squid.js';
import type { SquidStack } from './squid-stack.js';

export interface SquidTrafficOptions {
  readonly clients: number;
  /** Date.now() after which no client starts another request. */
  readonly until: number;
  /** seededRandom(): the same seed draws the same requests. */
  readonly random: (n: number) => number;
  /** Each request's own limit, in ms. */
  readonly requestMs: number;
  /** One request in eight is given up after 5-300 ms (a client that cancels). Default false. */
  readonly giveUp?: boolean;
  /** One download in ten may also be the 100 MiB file. Default false. */
  readonly largeFiles?: boolean;
}

export interface SquidTrafficResult {
  /** Each kind of answer, and how many. */
  readonly seen: Record<string, number>;
  readonly problems: string[];
}

export async function runSquidTraffic(stack: SquidStack, options: SquidTrafficOptions): Promise<SquidTrafficResult> {
  const { random } = options;
  const problems: string[] = [];
  const seen: Record<string, number> = {};
  const count = (what: string): void => void (seen[what] = (seen[what] ?? 0) + 1);

  const download = async (givesUp: boolean, timeoutMs: number): Promise<void> => {
    const files = ['/clean-64k.bin', '/clean-200k.bin', '/clean-1m.bin', '/eicar.com', '/eicar-1m.bin'];
    if (options.largeFiles === true && random(10) === 0) files.push('/clean-100m.bin');
    const path = files[random(files.length)]!;
    const infected = path.includes('eicar');
    const r = await proxyRequest(stack.squid.port, { url: stack.urlFor(path), timeoutMs });
    const whole = r.status === 200 && r.complete && r.bytes === ORIGIN_FILES[path]!.size && r.sha256 === expectedSha256(path);
    count(`download ${infected ? 'infected' : 'clean'}${givesUp ? ' given up' : ''}: ${whole ? 'whole' : r.status === 403 ? '403' : `${r.status} cut`}`);
    if (infected && whole) problems.push(`${path}: delivered whole`);
    if (!infected && !givesUp && !whole) problems.push(`${path}: HTTP ${r.status}, ${r.bytes} bytes, ${r.complete ? 'complete' : 'cut'}, error ${r.error}`);
  };

  const upload = async (givesUp: boolean, timeoutMs: number): Promise<void> => {
    const size = 1 + random(random(4) === 0 ? 3_000_000 : 70_000);
    const body = Buffer.alloc(size, 0x61 + random(20));
    const infected = size >= EICAR.length && random(4) === 0;
    if (infected) EICAR.copy(body, random(size - EICAR.length + 1));
    const r = await proxyRequest(stack.squid.port, { method: 'POST', url: stack.urlFor('/upload'), body, timeoutMs });
    // The origin answers an upload it read with 200 JSON { bytes, sha256 }.
    const arrived = r.status === 200 && r.text.includes('"sha256"');
    count(`upload ${infected ? 'infected' : 'clean'}${givesUp ? ' given up' : ''}: ${arrived ? 'arrived' : r.status}`);
    if (infected && arrived) problems.push(`upload of ${size} bytes with EICAR reached the origin`);
    if (!infected && !givesUp && !arrived) problems.push(`clean upload of ${size} bytes: HTTP ${r.status}, error ${r.error}`);
  };

  const client = async (): Promise<void> => {
    for (let k = 0; Date.now() < options.until && k < 100_000; k++) {
      const givesUp = options.giveUp === true && random(8) === 0;
      const timeoutMs = givesUp ? 5 + random(300) : options.requestMs;
      if (random(20) < 12) await download(givesUp, timeoutMs);
      else await upload(givesUp, timeoutMs);
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  return { seen, problems };
}
