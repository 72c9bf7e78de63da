/**
 * The `icap` backend against the real thing: Debian's c-icap with its virus_scan service
 * (libc-icap-mod-virus-scan), which scans with a private, offline clamd (test/helpers/clamd.ts,
 * test/helpers/c-icap.ts). Directly (scan and openStream, RESPMOD and REQMOD, preview and keep-
 * alive as c-icap does them), then end to end: the compiled bridge as a child process whose
 * services scan through c-icap, driven by a raw ICAP client; finally c-icap killed, and each
 * service's on_error decides.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScanMeta } from '../../src/backends/backend.js';
import { createIcapBackend, type IcapBackend } from '../../src/backends/icap/icap-backend.js';
import { ICAP_DEFAULTS, ICAP_POOL_DEFAULTS, type IcapBackendConfig } from '../../src/backends/icap/icap-config.js';
import { poolSettings } from '../../src/backends/pool/pool-settings.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { HAVE_C_ICAP_VIRUS_SCAN, startCIcap, type RunningCIcap } from '../helpers/c-icap.js';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { EICAR, HAVE_CLAMD, SIG, startClamd, type RunningClamd } from '../helpers/clamd.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, httpRequestHead, httpResponseHead } from '../helpers/icap-messages.js';

const META: ScanMeta = { transactionId: 't-c-icap', method: 'RESPMOD', clientAddress: '127.0.0.1', url: 'http://example.com/file.txt', contentType: 'text/plain' };

let clamd: RunningClamd;
let cicap: RunningCIcap;
let backend: IcapBackend;
let srv: ChildServer | undefined;

const signal = (): AbortSignal => new AbortController().signal;
/** Text c-icap's magic file calls TEXT (virus_scan only scans the ScanFileTypes it is given). */
const text = (n: number): Buffer => Buffer.alloc(n, 'a clean line of text for the upstream scanner\n');

beforeAll(async () => {
  if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
  if (!HAVE_C_ICAP_VIRUS_SCAN) throw new Error('c-icap or its virus_scan module missing: apt-get install c-icap libc-icap-mod-virus-scan (scripts/test-all.sh does)');
  clamd = await startClamd();
  cicap = await startCIcap({ clamdSocket: clamd.socketPath });
  const config: IcapBackendConfig = {
    ...poolSettings(ICAP_POOL_DEFAULTS, { health_interval_ms: 60_000 }),
    ...ICAP_DEFAULTS,
    endpoints: [cicap.avscanUrl],
    timeout_ms: 15_000,
  };
  backend = await createIcapBackend('c-icap', config);
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  // startChildServer leaves its directory (config, spool) for post-mortems; nothing here needs it.
  if (srv !== undefined) rmSync(srv.dir, { recursive: true, force: true });
  await backend?.close();
  await cicap?.stop();
  await clamd?.stop();
});

describe('c-icap virus_scan as the upstream, directly', () => {
  it("learns c-icap's OPTIONS: its ISTag is the version", () => {
    expect(backend.version).toMatch(/^icap "CI0001-[^"]+"$/);
    expect(backend.status()).toEqual([{ endpoint: cicap.avscanUrl, healthy: true, inFlight: 0, queued: 0 }]);
  });

  it('clean body → clean (within the preview, and past it with 100 Continue), spooled and streamed', async () => {
    for (const size of [100, 300_000]) {
      expect(await backend.scan(spooledBodyFromBuffer(text(size)), META, signal()), `${size}`).toMatchObject({ outcome: 'clean', endpoint: cicap.avscanUrl });
      const stream = backend.openStream!(META, signal());
      const data = text(size);
      for (let at = 0; at < data.length; at += 65_536) {
        if (!stream.write(data.subarray(at, at + 65_536))) await new Promise<void>((resolve) => stream.onDrain(resolve));
      }
      expect(await stream.end(), `${size} streamed`).toMatchObject({ outcome: 'clean' });
    }
  });

  it('EICAR → infected with the clamd threat name as virus_scan reports it', async () => {
    expect(await backend.scan(spooledBodyFromBuffer(EICAR), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
    const embedded = Buffer.concat([text(200_000), EICAR, text(1_000)]);
    expect(await backend.scan(spooledBodyFromBuffer(embedded), META, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
    const stream = backend.openStream!(META, signal());
    stream.write(EICAR.subarray(0, 20));
    stream.write(EICAR.subarray(20));
    expect(await stream.end()).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
  });

  it('REQMOD (an upload) too: clean and EICAR', async () => {
    const upload: ScanMeta = { ...META, method: 'REQMOD', url: 'http://example.com/upload' };
    expect(await backend.scan(spooledBodyFromBuffer(text(5_000)), upload, signal())).toMatchObject({ outcome: 'clean' });
    expect(await backend.scan(spooledBodyFromBuffer(EICAR), upload, signal())).toMatchObject({ outcome: 'infected', threats: [SIG.eicar] });
  });

  it('keeps its connections to c-icap alive across scans', async () => {
    const before = backend.connectionStats()[cicap.avscanUrl]!.opened;
    for (let i = 0; i < 5; i++) await backend.scan(spooledBodyFromBuffer(i % 2 === 0 ? EICAR : text(2_000)), META, signal());
    expect(backend.connectionStats()[cicap.avscanUrl]!.opened).toBe(before);
  });
});

describe('through the bridge, end to end', () => {
  beforeAll(async () => {
    srv = await startChildServer(`backends:
  upstream:
    { type: icap, endpoints: ["${cicap.virusScanUrl}"], timeout_ms: 15000, connect_timeout_ms: 1000, health_interval_ms: 200,
      health_timeout_ms: 1000, eject_after: 1, cooldown_ms: 200 }
services:
  respmod:
    methods: [RESPMOD]
    backends: [upstream]
    on_error: block
    commit_on_idle: { enabled: false }
  respmod-open:
    methods: [RESPMOD]
    backends: [upstream]
    on_error: allow
    commit_on_idle: { enabled: false }
`);
  }, 60_000);

  async function respmod(service: string, data: Buffer, url: string) {
    const client = await TestClient.connect(srv!.port);
    try {
      const req = buildRequest({ service, headers: [['Allow', '204']], reqHdr: httpRequestHead(url), resHdr: httpResponseHead(data.length, 'X-Test: 1\r\n'), body: [data], preview: 1024 });
      client.write(req.first);
      if (req.rest.length > 0) {
        expect((await client.read()).status).toBe(100);
        client.write(req.rest);
      }
      return await client.read(20_000);
    } finally {
      client.close();
    }
  }

  it('EICAR → blocked; X-Infection-Found carries the threat name c-icap reported', async () => {
    const url = 'http://e2e.test/eicar.com';
    const answer = await respmod('respmod', EICAR, url);
    expect(answer.status).toBe(200);
    expect(answer.resHdr).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer.header('X-Infection-Found')).toBe(`Type=0; Resolution=2; Threat=${SIG.eicar};`);
    const record = await srv!.recordFor(url);
    expect(record).toMatchObject({ verdict: 'infected', threats: [SIG.eicar] });
    expect(record.scans).toEqual([expect.objectContaining({ backend: 'upstream', endpoint: cicap.virusScanUrl, outcome: 'infected' })]);
  });

  it('a clean body → 204', async () => {
    const answer = await respmod('respmod', text(50_000), 'http://e2e.test/clean.txt');
    expect(answer.status).toBe(204);
    expect(answer.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
  });

  it('a download that arrives in pieces → 204 at once, not after timeout_ms (c-icap answers 200 early and echoes as it reads)', async () => {
    // virus_scan sends its 200 head as soon as the rest of the body is wanted and ends that answer
    // only after the last chunk (errata e7). The bridge used to stop sending at the head, so a body
    // still on its way ran into timeout_ms and was error-blocked. Squid sends what it has as it comes.
    const url = 'http://e2e.test/arrives-in-pieces.txt';
    const data = text(200_000);
    const req = buildRequest({ headers: [['Allow', '204']], reqHdr: httpRequestHead(url), resHdr: httpResponseHead(data.length), body: [data], preview: 1024 });
    const client = await TestClient.connect(srv!.port);
    try {
      const started = performance.now();
      client.write(req.first);
      expect((await client.read()).status).toBe(100);
      for (let at = 0; at < req.rest.length; at += 50_000) {
        client.write(req.rest.subarray(at, at + 50_000));
        await new Promise((r) => setTimeout(r, 50));
      }
      const answer = await client.read(20_000);
      expect(answer.status).toBe(204);
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      client.close();
    }
    expect(await srv!.recordFor(url)).toMatchObject({ verdict: 'clean', scans: [expect.objectContaining({ backend: 'upstream', outcome: 'clean' })] });
  });

  it('c-icap killed → an error result, decided by each service’s on_error', async () => {
    await cicap.kill();
    const blocked = await respmod('respmod', text(5_000), 'http://e2e.test/after-kill-block.txt');
    expect(blocked.status).toBe(200);
    expect(blocked.resHdr).toMatch(/^HTTP\/1\.1 403 /);
    expect(blocked.header('X-ICAP-Bridge-Decision')).toMatch(/^block; reason=error-policy; errors=upstream:(unreachable|backend-error)/);
    const allowed = await respmod('respmod-open', text(5_000), 'http://e2e.test/after-kill-allow.txt');
    expect(allowed.status).toBe(204);
    expect(allowed.header('X-ICAP-Bridge-Decision')).toMatch(/^allow; reason=error-policy; errors=upstream:(unreachable|backend-error)/);
    const record = await srv!.recordFor('http://e2e.test/after-kill-block.txt');
    expect(record.verdict).not.toBe('clean');
  });
});
