/**
 * The whole server under mutated input: the compiled CLI on a loopback port, bodies spilling to
 * the spool past 512 bytes; with the embedded engine; with clamd (INSTREAM and by path), the
 * MetaDefender emulator and the embedded engine behind one service; with the emulator alone,
 * answering 503, dropping connections and cutting its JSON short now and then; and with an ICAP
 * upstream (c-icap's virus_scan on clamd). Several clients send mutated ICAP requests (byte
 * flips, cuts, insertions of protocol tokens, changed numbers), split into random writes, and one
 * in ten hangs up halfway. The decoder has its own fuzz test (test/protocol/decoder-fuzz.test.ts);
 * this one covers what lies behind it: content decoding, multipart, preview, 206, the engines,
 * the spool and the connection's cleanup.
 *
 * What must hold (the project's rule for bad input): every answer starts with an ICAP status line,
 * nothing is logged at error level or above, the process stays up and still blocks EICAR, no
 * spool file or socket is left behind, and an unmutated infected request is never answered as
 * clean. Bounded: a fixed storm time, each exchange at most 1.5 s. Seeded (FUZZ_SEED=N) so a
 * failing run's mutations can be drawn again; with concurrent clients the timing, and with it the
 * order in which the clients draw, still varies from run to run.
 */
import { connect } from 'node:net';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulators/metadefender/emulator.js';
import { ROOT, startChildServer, type ChildServer } from '../helpers/child-server.js';
import { HAVE_C_ICAP_VIRUS_SCAN, startCIcap } from '../helpers/c-icap.js';
import { HAVE_CLAMD, startClamd, type RunningClamd } from '../helpers/clamd.js';
import { buildRequest, EICAR, httpRequestHead, httpResponseHead } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';

const STORM_MS = 12_000;
const CLIENTS = 8;
const EXCHANGE_MS = 1_500;
const SEED = Number(process.env.FUZZ_SEED ?? 20261122);

/** mulberry32: a small seeded generator, so a failing run's mutations can be drawn again. */
function seededRandom(seed: number): (n: number) => number {
  let state = seed | 0;
  return (n) => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}
const random = seededRandom(SEED);

interface Seed {
  name: string;
  bytes: Buffer;
  /** The body holds EICAR: unmutated and sent whole, it must never be answered as clean. */
  infected: boolean;
  /** With a preview: where it ends, so a client can wait there for 100 Continue as Squid does. */
  previewEnd?: number;
}

function whole(r: { first: Buffer; rest: Buffer }): Buffer {
  return Buffer.concat([r.first, r.rest]);
}

function previewed(name: string, infected: boolean, r: { first: Buffer; rest: Buffer }): Seed {
  return { name, infected, bytes: whole(r), ...(r.rest.length > 0 && { previewEnd: r.first.length }) };
}

function multipartBody(files: [string, Buffer][]): { body: Buffer; contentType: string } {
  const boundary = '----fuzzBoundary7';
  const parts = files.flatMap(([name, data]) => [
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="${name}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    data,
    Buffer.from('\r\n'),
  ]);
  return { body: Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]), contentType: `multipart/form-data; boundary=${boundary}` };
}

function seeds(): Seed[] {
  const filler = Buffer.alloc(30_000, 'a');
  const gzipped = gzipSync(Buffer.concat([Buffer.from('padding '), EICAR]));
  const deflated = deflateSync(Buffer.concat([EICAR, filler.subarray(0, 3000)]));
  const upload = multipartBody([['a.txt', Buffer.from('hello')], ['e.com', EICAR]]);
  const allow204: [string, string][] = [['Allow', '204']];
  const list: Seed[] = [
    { name: 'options', infected: false, bytes: Buffer.from('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nHost: x\r\nEncapsulated: null-body=0\r\n\r\n') },
    { name: 'reqmod-null', infected: false, bytes: whole(buildRequest({ method: 'REQMOD', reqHdr: httpRequestHead(), headers: allow204 })) },
    { name: 'respmod-clean', infected: false, bytes: whole(buildRequest({ body: ['hello world'], headers: allow204 })) },
    { name: 'respmod-eicar', infected: true, bytes: whole(buildRequest({ body: [EICAR], headers: allow204 })) },
    previewed('respmod-eicar-preview', true, buildRequest({ body: [EICAR], preview: 10, headers: allow204 })),
    previewed('respmod-spilled-preview', false, buildRequest({ body: [filler, filler], preview: 1024, headers: allow204 })),
    previewed('respmod-spilled-eicar-preview', true, buildRequest({ body: [filler, EICAR, filler], preview: 1024, headers: allow204 })),
    { name: 'respmod-spilled-eicar', infected: true, bytes: whole(buildRequest({ body: [filler, EICAR, filler], headers: [['Allow', '204, 206']] })) },
    {
      name: 'respmod-gzip-eicar',
      infected: true,
      bytes: whole(buildRequest({ body: [gzipped], resHdr: httpResponseHead(gzipped.length, 'Content-Encoding: gzip\r\n'), headers: allow204 })),
    },
    {
      name: 'respmod-deflate-eicar',
      infected: true,
      bytes: whole(buildRequest({ body: [deflated], resHdr: httpResponseHead(deflated.length, 'Content-Encoding: deflate\r\n'), headers: allow204 })),
    },
    {
      name: 'reqmod-multipart-eicar',
      infected: true,
      bytes: whole(
        buildRequest({
          method: 'REQMOD',
          reqHdr: `POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\nContent-Type: ${upload.contentType}\r\nContent-Length: ${upload.body.length}\r\n\r\n`,
          body: [upload.body],
          headers: allow204,
        }),
      ),
    },
    { name: 'respmod-eicar-no-204', infected: true, bytes: whole(buildRequest({ body: [EICAR, 'tail'] })) },
    { name: 'respmod-206', infected: false, bytes: whole(buildRequest({ body: [filler.subarray(0, 5000)], headers: [['Allow', '206']] })) },
  ];
  const wire = join(ROOT, 'test', 'fixtures', 'wire');
  for (const file of readdirSync(wire)) list.push({ name: file, infected: false, bytes: readFileSync(join(wire, file)) });
  return list;
}

const TOKENS = ['\r\n', '\r\n\r\n', '0\r\n\r\n', 'ffffffff\r\n', '-1\r\n', '; ieof', ':', ' ', '\n', '\0', 'Encapsulated: res-body=0\r\n', 'Preview: 0\r\n', 'Transfer-Encoding: chunked\r\n', 'Content-Encoding: gzip\r\n', '100000000000000000\r\n'];

/** Zero to three mutations; a quarter of the requests go out unmutated. */
function mutate(original: Buffer): { bytes: Buffer; mutated: boolean } {
  let out = Buffer.from(original);
  const count = random(4);
  for (let i = 0; i < count; i++) {
    const at = random(out.length + 1);
    switch (random(6)) {
      case 0:
        if (out.length > 0) out[Math.min(at, out.length - 1)] = random(256);
        break;
      case 1:
        out = out.subarray(0, at);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), Buffer.from(TOKENS[random(TOKENS.length)]!), out.subarray(at)]);
        break;
      case 3:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + random(64))]);
        break;
      case 4:
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.max(0, at - random(200)), at), out.subarray(at)]);
        break;
      default: {
        // A number (a length, an offset, a chunk size) replaced by another.
        const text = out.toString('latin1');
        const numbers = [...text.matchAll(/[0-9a-f]+/g)];
        const n = numbers[random(numbers.length)];
        if (n?.index !== undefined) out = Buffer.from(text.slice(0, n.index) + String(random(100_000)) + text.slice(n.index + n[0].length), 'latin1');
      }
    }
  }
  return { bytes: out, mutated: count > 0 };
}

interface Outcome {
  seed: Seed;
  mutated: boolean;
  hungUp: boolean;
  answer: string;
}

/**
 * Sends one request in random pieces on a new connection (mutated, and one in ten hung up on,
 * unless `fuzz` is false); collects what comes back within `timeoutMs`. Now and then a pause of
 * 100–250 ms (commit_on_idle's silence); half the unmutated previews wait for 100 Continue
 * before the rest, as Squid does, the others send it at once.
 */
function exchange(port: number, seed: Seed, { fuzz = true, timeoutMs = EXCHANGE_MS } = {}): Promise<Outcome> {
  const { bytes, mutated } = fuzz ? mutate(seed.bytes) : { bytes: seed.bytes, mutated: false };
  const hangUpAt = fuzz && random(10) === 0 ? random(bytes.length + 1) : -1;
  const waitAt = !mutated && seed.previewEnd !== undefined && random(2) === 0 ? seed.previewEnd : -1;
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ seed, mutated, hungUp: hangUpAt >= 0, answer: Buffer.concat(received).toString('latin1') });
    };
    const timer = setTimeout(settle, timeoutMs);
    let continued: (() => void) | null = null;
    let finalSeen = false;
    socket.on('data', (d: Buffer) => {
      received.push(d);
      if (finalSeen) return;
      const seen = statuses(Buffer.concat(received).toString('latin1'));
      if (seen.includes('100')) continued?.();
      // A final answer's head is in: give its body a moment, then stop.
      if (seen.some((s) => s !== '100')) {
        finalSeen = true;
        setTimeout(settle, 30);
      }
    });
    socket.on('error', settle);
    socket.on('close', settle);
    socket.on('connect', async () => {
      const end = hangUpAt >= 0 ? hangUpAt : bytes.length;
      for (let at = 0; at < end && !settled; ) {
        // A hang-up before the preview's end comes first: nothing is sent past it.
        const stop = at < waitAt && waitAt < end ? waitAt : end;
        const piece = Math.min(stop - at, 1 + random(random(2) === 0 ? 16 : 20_000));
        socket.write(bytes.subarray(at, at + piece));
        at += piece;
        if (at === waitAt) await new Promise<void>((r) => (continued = r));
        else if (random(40) === 0) await new Promise((r) => setTimeout(r, 100 + random(150)));
        else if (random(8) === 0) await new Promise((r) => setTimeout(r, random(5)));
      }
      if (hangUpAt >= 0) settle();
    });
  });
}

/** The ICAP status codes in an answer, in order (a 100 Continue, then the final one). */
function statuses(answer: string): string[] {
  return [...answer.matchAll(/(?:^|\r\n\r\n)ICAP\/1\.0 (\d{3}) /g)].map((m) => m[1]!);
}

/**
 * The storm and what must hold after it. `settleMs`: how long the server may take to answer the
 * check request afterwards (longer where real engines sit behind it).
 */
async function stormAndCheck(server: ChildServer, settleMs: number): Promise<void> {
  const corpus = seeds();
  const openFds = (): number => readdirSync(`/proc/${server.pid}/fd`).length;
  const fdsBefore = openFds();
  const outcomes: Outcome[] = [];
  const stormEnds = Date.now() + STORM_MS;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < stormEnds) outcomes.push(await exchange(server.port, corpus[random(corpus.length)]!));
    }),
  );

  const answered = outcomes.filter((o) => o.answer.length > 0);
  const notStatusLines = answered.filter((o) => !/^ICAP\/1\.0 \d{3} /.test(o.answer)).map((o) => `${o.seed.name}: ${JSON.stringify(o.answer.slice(0, 80))}`);
  expect(notStatusLines).toEqual([]);

  const eicar = EICAR.toString('latin1');
  const wholeInfected = outcomes.filter((o) => o.seed.infected && !o.mutated && !o.hungUp);
  expect(wholeInfected.length).toBeGreaterThan(5);
  const passedInfected = wholeInfected
    .filter((o) => {
      const final = statuses(o.answer).filter((s) => s !== '100')[0];
      // 204 and 206 hand back (part of) what was sent; a 200 must not carry it either.
      return final === '204' || final === '206' || (final === '200' && o.answer.includes(eicar));
    })
    .map((o) => `${o.seed.name}: ${JSON.stringify(o.answer.slice(0, 120))}`);
  expect(passedInfected).toEqual([]);

  // Not a vacuous storm: requests were taken, scanned, blocked and refused.
  const seen = new Set(answered.flatMap((o) => statuses(o.answer)));
  expect(answered.length).toBeGreaterThan(200);
  for (const status of ['200', '204', '400']) expect(seen).toContain(status);

  expect(server.process.exitCode).toBeNull();
  const errors = server.logs().filter((l) => typeof l.level === 'number' && l.level >= 50);
  expect(errors).toEqual([]);

  // Still serving: a whole EICAR request is blocked after the storm.
  const after = await exchange(server.port, corpus.find((s) => s.name === 'respmod-eicar')!, { fuzz: false, timeoutMs: settleMs });
  expect(after.answer).toMatch(/^ICAP\/1\.0 200 /);

  // Every abandoned transaction lets go of its spool file (the connections' timeouts are 2 s).
  await waitFor('an empty spool', () => readdirSync(server.spoolDir, { recursive: true }).length === 0, { timeoutMs: 6_000 });
  // ...and of its sockets, to the client and to the engines (a few pooled ones may stay open).
  await waitFor(`open descriptors back near the ${fdsBefore} before the storm`, () => openFds() <= fdsBefore + 4, { timeoutMs: 6_000 });
}

const INVARIANTS = 'answers with ICAP status lines, logs no error, leaves no spool file or socket, never passes an unmutated infected body';
// Inside `spool:` (startChildServer writes that section last, with its directory): spill past 512 bytes.
const SPILL_EARLY = '  memory_bytes: 512\n';
const SHORT_TIMEOUTS = '  timeouts: { header_ms: 2000, body_idle_ms: 2000 }\n';

/** Both services on `engines` (a YAML list of backend names). */
const services = (engines: string): string => `services:
  respmod: { methods: [RESPMOD], backends: ${engines}, allow_206: true }
  reqmod: { methods: [REQMOD], backends: ${engines} }
`;

/**
 * Starts what the server scans with, registering how to stop each piece as soon as it runs, and
 * returns the config's `backends:` (if any) and `services:` sections.
 */
type StartEngines = (onStop: (stop: () => Promise<void>) => void) => Promise<string>;

/** A server on `startEngines`'s engines, a storm, the checks; then everything stopped. */
function fuzzTheServer(title: string, skip: boolean, startEngines: StartEngines, settleMs: number): void {
  describe.skipIf(skip)(title, () => {
    const stops: (() => Promise<void>)[] = [];
    let server: ChildServer | undefined;

    beforeAll(async () => {
      const config = await startEngines((stop) => stops.push(stop));
      server = await startChildServer(`${SPILL_EARLY}${config}cache: { enabled: false }\n`, SHORT_TIMEOUTS);
    }, 60_000);

    afterAll(async () => {
      await server?.stop();
      if (server) rmSync(server.dir, { recursive: true, force: true });
      for (const stop of stops.reverse()) await stop();
    });

    it(INVARIANTS, () => stormAndCheck(server!, settleMs), 60_000);
  });
}

const startClamdForFuzz = async (onStop: (stop: () => Promise<void>) => void): Promise<RunningClamd> => {
  const clamd = await startClamd({ streamMaxLength: 4 * 1024 * 1024, maxThreads: 4, maxQueue: 64 });
  onStop(() => clamd.stop());
  return clamd;
};

describe(`the whole server under mutated input (FUZZ_SEED=${SEED})`, () => {
  fuzzTheServer('embedded engine', false, async () => services('[builtin]'), 2_000);

  fuzzTheServer(
    'clamd (INSTREAM and by path), the MetaDefender emulator and the embedded engine behind one service',
    !HAVE_CLAMD,
    async (onStop) => {
      const clamd = await startClamdForFuzz(onStop);
      const core = await startEmulator({ scanDurationMs: 5 });
      onStop(() => core.close());
      return `backends:
  clamav: { type: clamd, endpoints: ["${clamd.tcpEndpoint}"], read_timeout_ms: 10000 }
  clamav-path: { type: clamd, endpoints: ["${clamd.socketPath}"], transfer: path, read_timeout_ms: 10000 }
  core: { type: metadefender, endpoints: ["${core.url}"], timeout_ms: 10000, poll_initial_ms: 10, poll_max_ms: 50 }
  builtin: { type: builtin, workers: 1 }
${services('[clamav, clamav-path, core, builtin]')}`;
    },
    10_000,
  );

  fuzzTheServer(
    'a MetaDefender emulator that fails now and then',
    false,
    async (onStop) => {
      const core = await startEmulator({ scanDurationMs: 5, faults: { status503Rate: 0.1, dropRate: 0.1, malformedJsonRate: 0.1, unknownDataIdRate: 0.05, seed: SEED } });
      onStop(() => core.close());
      return `backends:
  core: { type: metadefender, endpoints: ["${core.url}"], timeout_ms: 5000, poll_initial_ms: 10, poll_max_ms: 50 }
${services('[core]')}`;
    },
    10_000,
  );

  fuzzTheServer(
    'an ICAP upstream: c-icap virus_scan on clamd',
    !HAVE_CLAMD || !HAVE_C_ICAP_VIRUS_SCAN,
    async (onStop) => {
      const clamd = await startClamdForFuzz(onStop);
      const cicap = await startCIcap({ clamdSocket: clamd.socketPath });
      onStop(() => cicap.stop());
      return `backends:
  upstream: { type: icap, endpoints: ["${cicap.virusScanUrl}"], timeout_ms: 10000, connect_timeout_ms: 1000 }
${services('[upstream]')}`;
    },
    10_000,
  );
});
