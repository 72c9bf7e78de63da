/**
 * Real Squid 5.7 in front of icap-bridge, with the content that squid-soak.test.ts does not send:
 * downloads with Content-Encoding: gzip, downloads without a Content-Length (chunked), both at
 * once, and multipart/form-data uploads whose parts may hold EICAR (some parts gzip-compressed).
 * Eight clients, one request in eight given up after 5-300 ms, the same files again and again (so
 * the verdict cache answers many of them). Two setups: the embedded engine, and clamd.
 *
 * What must hold, for each setup:
 * - no infected download gets through whole, and none arrives as a complete 200 (a download
 *   without a Content-Length is cut by a close, which only counts for Squid's failure limit, so
 *   this Squid has icap_service_failure_limit -1, as config/examples/squid.conf suggests);
 * - no upload with EICAR in a part reaches the origin (a gzip-compressed part counts only for
 *   clamd, which unpacks it; the embedded engine scans what it is given);
 * - every clean download and upload that was not given up arrives whole. One exception, Squid's
 *   bug 5550 (README, Squid): a clean chunked download after a commit may arrive with every byte
 *   but without its final chunk. icap-bridge's pause before the last chunk makes that rare; those
 *   are counted, printed, and must stay within 2 (or 2 %);
 * - nothing logged at error level, the spool empty, and the descriptors back once Squid is gone.
 * Bounded: SOAK_MS per setup (15 s unless set), each request at most 60 s; SOAK_SEED=N draws
 * another sequence of requests.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { startChildServer } from '../helpers/child-server.js';
import { HAVE_CLAMD, startClamd } from '../helpers/clamd.js';
import { EICAR } from '../helpers/icap-messages.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { proxyRequest, startSquid } from '../helpers/squid.js';
import { waitFor } from '../helpers/wait.js';

const SOAK_MS = Number(process.env.SOAK_MS ?? 15_000);
const SEED = Number(process.env.SOAK_SEED ?? 20261123);
const CLIENTS = 8;
const REQUEST_MS = 60_000;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const openDescriptors = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Compressible text (gzip shrinks it about tenfold), the same for the same seed. */
function text(bytes: number, seed: number): Buffer {
  const words = ['alpha ', 'beta ', 'gamma ', 'delta ', 'lorem ', 'ipsum ', 'dolor\n'];
  const random = seededRandom(seed);
  const parts: string[] = [];
  for (let length = 0; length < bytes; ) {
    const word = words[random(words.length)]!;
    parts.push(word);
    length += word.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

interface OriginFile {
  /** The bytes on the wire (gzip-compressed for the gz files). */
  readonly body: Buffer;
  readonly sha256: string;
  readonly gzip: boolean;
  /** Sent without a Content-Length: chunked. */
  readonly chunked: boolean;
  readonly infected: boolean;
}

/** /gz-* gzip with a Content-Length, /gzch-* gzip chunked, /ch-* plain chunked; clean or EICAR at the end. */
function originFiles(): Map<string, OriginFile> {
  const files = new Map<string, OriginFile>();
  for (const [size, bytes] of [['64k', 65_536], ['1m', 1 << 20], ['20m', 20 << 20]] as const) {
    const clean = text(bytes, bytes);
    const infected = Buffer.concat([clean, EICAR]);
    for (const [prefix, gzip, chunked] of [['gz', true, false], ['gzch', true, true], ['ch', false, true]] as const) {
      for (const [kind, plain] of [['clean', clean], ['eicar', infected]] as const) {
        const body = gzip ? gzipSync(plain) : plain;
        files.set(`/${prefix}-${kind}-${size}`, { body, sha256: sha256(body), gzip, chunked, infected: kind === 'eicar' });
      }
    }
  }
  return files;
}

/** Serves the files (any query ignored) and answers POST with { bytes, sha256 } of what it read. */
async function startOrigin(files: Map<string, OriginFile>): Promise<{ base: string; server: Server; uploads: string[] }> {
  const uploads: string[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
      });
      req.on('end', () => {
        const digest = hash.digest('hex');
        uploads.push(digest);
        const body = JSON.stringify({ bytes, sha256: digest });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
        res.end(body);
      });
      req.on('error', () => res.destroy());
      return;
    }
    req.resume();
    const file = files.get((req.url ?? '/').split('?')[0]!);
    if (file === undefined) {
      res.writeHead(404, { 'Content-Length': 0 });
      res.end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': file.gzip ? 'text/plain' : 'application/octet-stream',
      'Cache-Control': 'no-store',
      ...(file.gzip ? { 'Content-Encoding': 'gzip' } : {}),
      ...(file.chunked ? {} : { 'Content-Length': file.body.length }),
    });
    let at = 0;
    const pump = (): void => {
      while (at < file.body.length) {
        const piece = file.body.subarray(at, at + 65_536);
        at += piece.length;
        if (!res.write(piece)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    res.on('close', () => (at = Infinity));
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, uploads };
}

type Setup = () => Promise<{ yaml: string; unpacksGzip: boolean; stop?: () => Promise<unknown> }>;

const SETUPS: [string, Setup, boolean][] = [
  ['the embedded engine', async () => ({ yaml: '', unpacksGzip: false }), false],
  [
    'clamd',
    async () => {
      const clamd = await startClamd({ streamMaxLength: 128 * 1024 * 1024, maxThreads: 6, maxQueue: 64 });
      const backend = `clamav: { type: clamd, endpoints: ["${clamd.tcpEndpoint}"], read_timeout_ms: 20000, stream_max_bytes: 134217728 }`;
      return {
        yaml: `backends:\n  ${backend}\nservices:\n  respmod: { methods: [RESPMOD], backends: [clamav] }\n  reqmod: { methods: [REQMOD], backends: [clamav] }\n`,
        unpacksGzip: true,
        stop: () => clamd.stop(),
      };
    },
    !HAVE_CLAMD,
  ],
];

const FILES = originFiles();

describe.each(SETUPS)('Squid soak with gzip, chunked and multipart content: %s', (name, setup, skip) => {
  it.skipIf(skip)('answers every request right, and frees everything', async () => {
    const engine = await setup();
    const running: { stop(): Promise<unknown> }[] = engine.stop ? [{ stop: engine.stop }] : [];
    try {
      const origin = await startOrigin(FILES);
      running.push({ stop: () => new Promise((r) => (origin.server.closeAllConnections(), origin.server.close(r))) });
      const bridge = await startChildServer(engine.yaml);
      running.push(bridge);
      const squid = await startSquid({ icapPort: bridge.port, extraConf: 'icap_service_failure_limit -1' });
      running.push(squid);

      const before = openDescriptors(bridge.pid);
      const random = seededRandom(SEED);
      const problems: string[] = [];
      const squidBug5550: string[] = [];
      const seen: Record<string, number> = {};
      const count = (what: string): void => void (seen[what] = (seen[what] ?? 0) + 1);
      const end = Date.now() + SOAK_MS;
      let n = 0;

      const download = async (givesUp: boolean, timeoutMs: number): Promise<void> => {
        const paths = [...FILES.keys()].filter((p) => !p.endsWith('-20m') || random(6) === 0);
        const path = paths[random(paths.length)]!;
        const file = FILES.get(path)!;
        const url = `${origin.base}${path}?n=${++n}`;
        const r = await proxyRequest(squid.port, { url, timeoutMs });
        const allBytes = r.status === 200 && r.bytes === file.body.length && r.sha256 === file.sha256;
        const whole = allBytes && r.complete;
        const kind = `download ${path.split('-')[0]!.slice(1)} ${file.infected ? 'infected' : 'clean'}${givesUp ? ' given up' : ''}`;
        count(`${kind}: ${whole ? 'whole' : r.status === 403 ? '403' : `${r.status} cut`}`);
        if (file.infected && (allBytes || (r.status === 200 && r.complete))) problems.push(`${path}: infected, HTTP 200 ${r.bytes} bytes ${r.complete ? 'complete' : 'cut'}`);
        if (file.infected || givesUp || whole) return;
        if (file.chunked && allBytes) squidBug5550.push(url);
        else problems.push(`${path}: HTTP ${r.status}, ${r.bytes}/${file.body.length} bytes, ${r.complete ? 'complete' : 'cut'}, error ${r.error}`);
      };

      const upload = async (givesUp: boolean, timeoutMs: number): Promise<void> => {
        const boundary = `----soak${random(1e9)}`;
        const pieces: Buffer[] = [];
        let infected = false;
        for (let i = 0, parts = 1 + random(3); i < parts; i++) {
          let data = text(1 + random(random(3) === 0 ? 2_000_000 : 50_000), random(1000));
          const gzip = random(3) === 0;
          if (random(4) === 0) {
            data = Buffer.concat([data, EICAR]);
            infected ||= !gzip || engine.unpacksGzip;
          }
          if (gzip) data = gzipSync(data);
          pieces.push(
            Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="f${i}"; filename="part${i}${gzip ? '.gz' : '.txt'}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
            data,
            Buffer.from('\r\n'),
          );
        }
        pieces.push(Buffer.from(`--${boundary}--\r\n`));
        const body = Buffer.concat(pieces);
        const digest = sha256(body);
        const r = await proxyRequest(squid.port, { method: 'POST', url: `${origin.base}/upload?n=${++n}`, body, contentType: `multipart/form-data; boundary=${boundary}`, timeoutMs });
        const arrived = r.status === 200 && r.text.includes(digest);
        count(`upload ${infected ? 'infected' : 'clean'}${givesUp ? ' given up' : ''}: ${arrived ? 'arrived' : r.status}`);
        if (infected && origin.uploads.includes(digest)) problems.push(`multipart upload of ${body.length} bytes with EICAR reached the origin`);
        if (!infected && !givesUp && !arrived) problems.push(`clean multipart upload of ${body.length} bytes: HTTP ${r.status}, error ${r.error}`);
      };

      const client = async (): Promise<void> => {
        for (let k = 0; Date.now() < end && k < 100_000; k++) {
          const givesUp = random(8) === 0;
          const timeoutMs = givesUp ? 5 + random(300) : REQUEST_MS;
          if (random(20) < 13) await download(givesUp, timeoutMs);
          else await upload(givesUp, timeoutMs);
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, client));
      const chunkedClean = Object.entries(seen)
        .filter(([k]) => /^download (gzch|ch) clean:/.test(k))
        .reduce((sum, [, v]) => sum + v, 0);
      console.log(`${name} (seed ${SEED}): ${JSON.stringify(seen, null, 1)}\nSquid bug 5550 (all bytes, no final chunk): ${squidBug5550.length} of ${chunkedClean + squidBug5550.length} clean chunked downloads ${squidBug5550.join(' ')}`);

      expect(problems.slice(0, 20)).toEqual([]);
      // Squid's race: 0.2-2.3 % of such downloads without the pause before the last chunk
      // (transaction.ts LAST_CHUNK_PAUSE_MS), none of 5,854 with it (README, Squid).
      expect(squidBug5550.length).toBeLessThanOrEqual(Math.max(2, chunkedClean * 0.02));
      for (const kind of ['download gz clean: whole', 'download gzch clean: whole', 'download ch clean: whole', 'download gz infected: 403', 'upload clean: arrived', 'upload infected: 403']) {
        expect(seen[kind] ?? 0, kind).toBeGreaterThan(0);
      }
      expect(Object.keys(seen).some((k) => /^download (gzch|ch) infected: 200 cut$/.test(k)), 'a chunked infected download cut').toBe(true);
      expect(squid.cacheLog()).not.toMatch(/suspend/i);
      expect(bridge.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
      await squid.stop();
      await waitFor('icap-bridge to close the ICAP connections Squid left', () => openDescriptors(bridge.pid) <= before + 4);
      await waitFor('an empty spool', () => readdirSync(bridge.spoolDir).length === 0);
    } finally {
      while (running.length > 0) await running.pop()!.stop();
    }
  }, SOAK_MS + 150_000);
});
