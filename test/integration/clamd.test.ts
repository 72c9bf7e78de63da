/**
 * The clamd backend against a real, private clamd (Debian's clamav-daemon; test/helpers/clamd.ts
 * builds its signature DB offline), over TCP and over the UNIX socket: verdicts, chunking, the
 * size budget, clamd's early reply, its silent queue-full state, a SIGKILL mid-scan, restart,
 * an endpoint down at creation, and the DB version in `version`.
 */
import { createConnection, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../../src/backends/backend.js';
import { createClamdBackend, type ClamdBackendConfig } from '../../src/backends/clamd/clamd-backend.js';
import { CLAMD_POOL_DEFAULTS } from '../../src/backends/clamd/clamd-config.js';
import { poolSettings } from '../../src/backends/pool/pool-settings.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { freePort } from '../helpers/child-server.js';
import { BODY_MARKER, EICAR, HAVE_CLAMD, HASH_FIXTURE, SIG, startClamd, type RunningClamd } from '../helpers/clamd.js';

const META: ScanMeta = { transactionId: 't-clamd', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const MiB = 1024 * 1024;
/** clamd's StreamMaxLength here; `stream_max_bytes` matches it unless a test says otherwise. */
const CLAMD_LIMIT = 8 * MiB;
const MAX_QUEUE = 4;

let clamd: RunningClamd;
const backends: Backend[] = [];

function config(endpoints: string[], overrides: Partial<ClamdBackendConfig> = {}): ClamdBackendConfig {
  return {
    ...poolSettings(CLAMD_POOL_DEFAULTS),
    endpoints,
    stream_max_bytes: CLAMD_LIMIT,
    chunk_bytes: 4096,
    connect_timeout_ms: 500,
    read_timeout_ms: 10_000,
    version_command: true,
    max_concurrency: 2,
    max_queue: 8,
    health_interval_ms: 200,
    ...overrides,
  };
}

async function backendFor(endpoints: string[], overrides: Partial<ClamdBackendConfig> = {}): Promise<Backend> {
  const b = await createClamdBackend('clamav', config(endpoints, overrides));
  backends.push(b);
  return b;
}

const signal = (): AbortSignal => new AbortController().signal;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Filler that cannot contain a signature by accident. */
function filler(size: number): Buffer {
  return Buffer.alloc(size, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
}

async function feed(scan: StreamingScan, parts: readonly Buffer[], pauseMs = 0): Promise<BackendResult> {
  for (const part of parts) {
    if (!scan.write(part)) await new Promise<void>((resolve) => scan.onDrain(resolve));
    if (pauseMs > 0) await sleep(pauseMs);
  }
  return scan.end();
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
  clamd = await startClamd({ streamMaxLength: CLAMD_LIMIT, maxThreads: 2, maxQueue: MAX_QUEUE, commandReadTimeout: 5 });
  console.log(`clamd ready in ${clamd.startTimesMs[0]} ms (pid ${clamd.pid()})`);
});

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
});

afterAll(async () => {
  await clamd?.stop();
});

describe.each(['tcp', 'unix'] as const)('real clamd over %s', (transport) => {
  const endpoint = (): string => (transport === 'tcp' ? clamd.tcpEndpoint : clamd.socketPath);

  it('clean body → clean', async () => {
    const b = await backendFor([endpoint()]);
    expect(b.status()).toEqual([{ endpoint: endpoint(), healthy: true, inFlight: 0, queued: 0 }]);
    expect(await b.scan(spooledBodyFromBuffer(filler(100_000)), META, signal())).toMatchObject({ outcome: 'clean', backend: 'clamav' });
    expect(await feed(b.openStream!(META, signal()), [filler(10_000)])).toMatchObject({ outcome: 'clean' });
  });

  it('EICAR → infected, with the name clamd reports (streamed, spooled, and inside a larger body)', async () => {
    const b = await backendFor([endpoint()]);
    expect(await b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
    expect(await feed(b.openStream!(META, signal()), [EICAR])).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
    const embedded = Buffer.concat([filler(50_000), EICAR, filler(50_000)]);
    expect(await b.scan(spooledBodyFromBuffer(embedded), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
  });

  it('hash signature: only the exact file matches', async () => {
    const b = await backendFor([endpoint()]);
    expect(await b.scan(spooledBodyFromBuffer(HASH_FIXTURE), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.hash] });
    const plusOne = Buffer.concat([HASH_FIXTURE, Buffer.from('x')]);
    expect(await b.scan(spooledBodyFromBuffer(plusOne), META, signal())).toMatchObject({ outcome: 'clean' });
  });

  it('body signature across an INSTREAM chunk boundary (and across write() boundaries)', async () => {
    const b = await backendFor([endpoint()], { chunk_bytes: 4096 });
    for (const split of [1, 17, BODY_MARKER.length - 1]) {
      const body = filler(3 * 4096);
      BODY_MARKER.copy(body, 2 * 4096 - split);
      expect(await b.scan(spooledBodyFromBuffer(body), META, signal()), `split ${split}`).toMatchObject({ outcome: 'infected', threats: [SIG.body] });
      const at = 2 * 4096 - split + Math.floor(BODY_MARKER.length / 2);
      const streamed = await feed(b.openStream!(META, signal()), [body.subarray(0, at), body.subarray(at)]);
      expect(streamed, `streamed split ${split}`).toMatchObject({ outcome: 'infected', threats: [SIG.body] });
    }
  });

  it('streaming fed in small pieces with pauses', async () => {
    const b = await backendFor([endpoint()], { chunk_bytes: 64 });
    const body = Buffer.concat([filler(700), BODY_MARKER, filler(300)]);
    const pieces: Buffer[] = [];
    for (let at = 0; at < body.length; at += 37) pieces.push(body.subarray(at, at + 37));
    expect(await feed(b.openStream!(META, signal()), pieces, 5)).toMatchObject({ outcome: 'infected', threats: [SIG.body] });
    expect(await feed(b.openStream!(META, signal()), pieces.slice(0, 10), 20)).toMatchObject({ outcome: 'clean' });
  });

  it('a body over stream_max_bytes is too-large, nothing past the limit is sent, and the next scan works', async () => {
    const b = await backendFor([endpoint()], { chunk_bytes: 65_536 });
    const parts = Array.from({ length: 9 }, () => filler(MiB));
    const started = performance.now();
    const result = await feed(b.openStream!(META, signal()), parts);
    expect(result).toMatchObject({ outcome: 'error', kind: 'too-large', message: expect.stringContaining('stream_max_bytes') });
    expect(await b.scan(spooledBodyFromBuffer(filler(CLAMD_LIMIT + 1)), META, signal())).toMatchObject({ outcome: 'error', kind: 'too-large' });
    // Exactly at the limit is fine: clamd's budget is StreamMaxLength bytes.
    expect(await feed(b.openStream!(META, signal()), parts.slice(0, 8))).toMatchObject({ outcome: 'clean' });
    expect(await b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected' });
    expect(b.status()[0]).toMatchObject({ healthy: true, inFlight: 0 });
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('stream_max_bytes above clamd\'s StreamMaxLength: clamd answers early and closes; an error, never clean', async () => {
    const b = await backendFor([endpoint()], { stream_max_bytes: 4 * CLAMD_LIMIT, chunk_bytes: 65_536 });
    const parts = Array.from({ length: 12 }, () => filler(MiB));
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const result = await feed(b.openStream!(META, signal()), parts);
      expect(result.outcome).toBe('error');
      if (result.outcome === 'error') kinds.push(`${result.kind}: ${result.message}`);
    }
    console.log(`early reply (${transport}):\n  ${kinds.join('\n  ')}`);
    // The reply is read whenever Node got to it before a failing write (see instream-scan.ts).
    expect(kinds.every((k) => k.startsWith('too-large: clamd: INSTREAM size limit exceeded. ERROR') || k.startsWith('backend-error:'))).toBe(true);
    await waitFor('endpoint healthy after the early close', () => b.status()[0]!.healthy);
    expect(await b.scan(spooledBodyFromBuffer(filler(1000)), META, signal())).toMatchObject({ outcome: 'clean' });
  });
});

describe('real clamd: health, version, failures', () => {
  it('version carries the signature DB version and follows a DB reload', async () => {
    const b = await backendFor([clamd.tcpEndpoint, clamd.socketPath]);
    expect(b.version).toMatch(/^clamd ClamAV \d+\.\d+\.\d+\/27001\//);
    console.log(`version: ${b.version}`);
    await clamd.setDbVersion(27002);
    await waitFor('version 27002', () => b.version.includes('/27002/'));
    expect(b.version).toMatch(/^clamd ClamAV \d+\.\d+\.\d+\/27002\//);
    const disabled = await backendFor([clamd.tcpEndpoint], { version_command: false });
    expect(disabled.version).toBe('clamd unknown');
  });

  it('queue full (MaxQueue connections open): the connection is accepted but never answered → overloaded', async () => {
    const b = await backendFor([clamd.tcpEndpoint], { connect_timeout_ms: 300, read_timeout_ms: 20_000, health_interval_ms: 60_000 });
    // clamd stops calling accept() while MaxQueue clients are connected (spec §5).
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < MAX_QUEUE; i++) {
        const s = createConnection({ host: '127.0.0.1', port: clamd.port });
        s.on('error', () => {});
        idle.push(s);
      }
      await sleep(200);
      const started = performance.now();
      const result = await b.scan(spooledBodyFromBuffer(filler(1000)), META, signal());
      const tookMs = Math.round(performance.now() - started);
      console.log(`queue full: ${JSON.stringify(result)} after ${tookMs} ms`);
      expect(result).toMatchObject({ outcome: 'error', kind: 'overloaded' });
      expect(tookMs).toBeLessThan(3000);
      expect(b.status()[0]!.healthy).toBe(false);
    } finally {
      for (const s of idle) s.destroy();
    }
    // Freed: even marked unhealthy, the only endpoint is still tried, and answers.
    await sleep(100);
    expect(await b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
    expect(b.status()[0]!.healthy).toBe(true);
  });

  it('an endpoint down at creation: unhealthy, version unavailable, scans unreachable', async () => {
    const b = await backendFor([`127.0.0.1:${await freePort()}`]);
    expect(b.version).toBe('clamd unavailable');
    expect(b.status()).toEqual([expect.objectContaining({ healthy: false })]);
    expect(await b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'error', kind: 'unreachable' });
    expect(await feed(b.openStream!(META, signal()), [EICAR])).toMatchObject({ outcome: 'error', kind: 'unreachable' });
  });

  it.each(['tcp', 'unix'] as const)('clamd SIGKILLed while a large body streams (%s) → error, never clean; unhealthy; back after restart', async (transport) => {
    const endpoint = transport === 'tcp' ? clamd.tcpEndpoint : clamd.socketPath;
    const b = await backendFor([endpoint], { chunk_bytes: 65_536 });
    expect(b.status()[0]!.healthy).toBe(true);
    const scan = b.openStream!(META, signal());
    const piece = filler(256 * 1024);
    let sent = 0;
    for (let i = 0; i < 28; i++) {
      if (!scan.write(piece)) await new Promise<void>((resolve) => scan.onDrain(resolve));
      sent += piece.length;
      if (i === 8) await clamd.kill('SIGKILL');
      await sleep(5);
    }
    const result = await scan.end();
    console.log(`killed mid-scan after ~${sent} bytes offered (${transport}): ${JSON.stringify(result)}`);
    expect(result.outcome).toBe('error');
    if (result.outcome === 'error') expect(['backend-error', 'unreachable']).toContain(result.kind);
    await waitFor('endpoint marked unhealthy', () => b.status()[0]!.healthy === false);
    expect(await b.scan(spooledBodyFromBuffer(filler(100)), META, signal())).toMatchObject({ outcome: 'error', kind: 'unreachable' });

    await clamd.restart();
    console.log(`clamd restarted in ${clamd.startTimesMs.at(-1)} ms`);
    await waitFor('endpoint healthy again after PING', () => b.status()[0]!.healthy === true);
    expect(await b.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
  });
});
