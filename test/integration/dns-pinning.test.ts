/**
 * DNS mode (DESIGN.md "Backends and pools"): a name whose A records become pool endpoints, with
 * each job pinned to the address that accepted it while Host and the TLS server name stay the
 * name. A test DNS responder (test/helpers/dns-server.ts) answers `core.test` with 127.0.0.1,
 * 127.0.0.2 and 127.0.0.3 (all loopback on Linux); three MetaDefender emulators listen on those
 * addresses, on the same port. Also: clamd stand-ins behind one name, and an https server
 * reached through a pinned address under its certificate's name.
 */
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta } from '../../src/backends/backend.js';
import { createClamdBackend } from '../../src/backends/clamd/clamd-backend.js';
import { CLAMD_POOL_DEFAULTS } from '../../src/backends/clamd/clamd-config.js';
import { CoreEndpoint } from '../../src/backends/metadefender/core-endpoint.js';
import { createMetaDefenderBackend } from '../../src/backends/metadefender/metadefender-backend.js';
import { poolSettings } from '../../src/backends/pool/pool-settings.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { startEmulator, type EmulatorHandle } from '../../emulators/metadefender/emulator.js';
import { startTestDns, type TestDns } from '../helpers/dns-server.js';
import { makeTestCerts, type TestCerts } from '../helpers/tls-certs.js';

const META: ScanMeta = { transactionId: 'tx-dns', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const ADDRESSES = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const signal = (): AbortSignal => new AbortController().signal;

let dns: TestDns;
let dir: string;
const backends: Backend[] = [];
const emulators: EmulatorHandle[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  dns = await startTestDns();
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-dns-test-'));
});

afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(emulators.map((e) => e.close()));
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await dns.close();
  await rm(dir, { recursive: true, force: true });
});

/** One emulator per address, all on the port the first one got. */
async function emulatorsOnOnePort(): Promise<EmulatorHandle[]> {
  const first = await startEmulator({ host: ADDRESSES[0]!, scanDurationMs: 40 });
  emulators.push(first);
  const rest = await Promise.all(ADDRESSES.slice(1).map((host) => startEmulator({ host, port: first.port, scanDurationMs: 40 })));
  emulators.push(...rest);
  return [first, ...rest];
}

describe('MetaDefender in DNS mode', () => {
  it('every call of a job goes to the address that accepted it, jobs spread over all, Host stays the name', async () => {
    const ems = await emulatorsOnOnePort();
    const port = ems[0]!.port;
    dns.set('core.test', ADDRESSES, 60);
    const b = await createMetaDefenderBackend({
      name: 'core',
      endpoints: [`http://core.test:${port}`],
      apikey: '',
      rule: '',
      timeoutMs: 10_000,
      pollInitialMs: 5,
      pollMaxMs: 20,
      hashLookup: false,
      sanitize: false,
      maxFileBytes: 0,
      spool: { memoryBytes: 64 * 1024, directory: dir },
      pool: { health_interval_ms: 0, dns: { enabled: true, server: dns.server, min_ttl_ms: 1_000, max_ttl_ms: 60_000 } },
    });
    backends.push(b);
    const ids = ADDRESSES.map((a) => `http://core.test:${port} (${a})`);
    expect(b.status()).toEqual(ids.map((endpoint) => ({ endpoint, healthy: true, inFlight: 0, queued: 0 })));

    // 30 scans, 10 at a time: each job is polled several times while others run.
    const results: BackendResult[] = [];
    for (let round = 0; round < 3; round++) {
      results.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => b.scan(spooledBodyFromBuffer(Buffer.from(`file ${round}-${i}\n`)), META, signal())))));
    }
    expect(results.map((r) => r.outcome)).toEqual(Array(30).fill('clean'));

    const accepted = ems.map((em) => em.stats.acceptedIds.length);
    console.log(`jobs accepted per address ${ADDRESSES.join(', ')}: ${accepted.join(', ')}`);
    expect(accepted.reduce((a, n) => a + n, 0)).toBe(30);
    for (const n of accepted) expect(n).toBeGreaterThan(0);
    // Each result names the pinned endpoint that answered: as many as that emulator accepted.
    ems.forEach((em, i) => expect(results.filter((r) => r.endpoint === ids[i]).length).toBe(em.stats.acceptedIds.length));

    for (const em of ems) {
      const polls = em.stats.requests.filter((r) => r.route === 'poll');
      expect(polls.length).toBeGreaterThanOrEqual(em.stats.acceptedIds.length);
      for (const p of polls) {
        expect(em.stats.acceptedIds, `poll of ${p.id} on the wrong address`).toContain(p.id);
        expect(p.status).toBe(200);
      }
      // Every call, health checks included, names the DNS name, never the address.
      expect(new Set(em.stats.requests.map((r) => r.headers['host']))).toEqual(new Set([`core.test:${port}`]));
    }
  });
});

/** A clamd stand-in: PING, VERSION, INSTREAM answered "stream: OK"; counts scans. */
async function fakeClamd(host: string, port: number): Promise<{ scans: number; port: number }> {
  const state = { scans: 0, port };
  const server = createServer((socket: Socket) => {
    let buf = Buffer.alloc(0);
    let streaming = false;
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => {
      buf = Buffer.concat([buf, data]);
      if (!streaming) {
        const nul = buf.indexOf(0);
        if (nul === -1) return;
        const command = buf.subarray(0, nul).toString('latin1');
        buf = buf.subarray(nul + 1);
        if (command === 'zPING') return void socket.end('PONG\0');
        if (command === 'zVERSION') return void socket.end('ClamAV 9.9.9/1/today\0');
        streaming = true;
      }
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len === 0) {
          state.scans++;
          return void socket.end('stream: OK\0');
        }
        if (buf.length < 4 + len) return;
        buf = buf.subarray(4 + len);
      }
    });
  });
  server.listen(port, host);
  await once(server, 'listening');
  servers.push(server);
  state.port = (server.address() as { port: number }).port;
  return state;
}

describe('clamd in DNS mode', () => {
  it('a name with two records is two pool endpoints; scans alternate between the addresses', async () => {
    const a = await fakeClamd('127.0.0.2', 0);
    const c = await fakeClamd('127.0.0.3', a.port);
    dns.set('clamd.test', ['127.0.0.2', '127.0.0.3'], 60);
    const b = await createClamdBackend('clamav', {
      ...poolSettings(CLAMD_POOL_DEFAULTS, { health_interval_ms: 60_000, dns: { enabled: true, server: dns.server, min_ttl_ms: 1_000, max_ttl_ms: 60_000 } }),
      endpoints: [`clamd.test:${a.port}`],
      stream_max_bytes: 1024 * 1024,
      chunk_bytes: 4096,
      connect_timeout_ms: 500,
      read_timeout_ms: 5_000,
      version_command: true,
    });
    backends.push(b);
    expect(b.status().map((s) => [s.endpoint, s.healthy])).toEqual([
      [`clamd.test:${a.port} (127.0.0.2)`, true],
      [`clamd.test:${a.port} (127.0.0.3)`, true],
    ]);
    expect(b.version).toBe('clamd ClamAV 9.9.9/1/today');
    const results: BackendResult[] = [];
    for (let i = 0; i < 6; i++) results.push(await b.scan(spooledBodyFromBuffer(Buffer.from(`body ${i}`)), META, signal()));
    expect(results.map((r) => r.outcome)).toEqual(Array(6).fill('clean'));
    expect([a.scans, c.scans]).toEqual([3, 3]);
    expect(results.map((r) => r.endpoint)).toEqual(
      [2, 3, 2, 3, 2, 3].map((n) => `clamd.test:${a.port} (127.0.0.${n})`),
    );
  });
});

describe('https through a pinned address', () => {
  let certs: TestCerts;
  beforeAll(() => {
    certs = makeTestCerts();
  });
  afterAll(() => rmSync(certs.dir, { recursive: true, force: true }));

  it('connects to the pinned address; SNI, certificate check and Host use the name', async () => {
    const seen: { servername: string | false | null; host: string | undefined }[] = [];
    const server = createHttpsServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (req, res) => {
      seen.push({ servername: (req.socket as TLSSocket).servername, host: req.headers.host });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":"5.10.1"}');
    });
    // Only on 127.0.0.2: "localhost" itself would resolve to 127.0.0.1 or ::1, where nothing listens.
    server.listen(0, '127.0.0.2');
    await once(server, 'listening');
    servers.push(server);
    const { port } = server.address() as { port: number };
    // The test certificate is for DNS:localhost (and IP:127.0.0.1), not for 127.0.0.2.
    const core = new CoreEndpoint({ url: `https://localhost:${port}`, connections: 1, headers: {}, pin: '127.0.0.2', tls: { ca: readFileSync(certs.caCert) } });
    try {
      const reply = await core.json('GET', '/version', AbortSignal.timeout(5_000));
      expect(reply).toMatchObject({ status: 200, json: { version: '5.10.1' } });
      expect(seen).toEqual([{ servername: 'localhost', host: `localhost:${port}` }]);
    } finally {
      await core.close();
    }
  });
});
