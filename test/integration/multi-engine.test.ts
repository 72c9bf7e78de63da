/**
 * One service scanning with three engines in parallel — a real private clamd, a MetaDefender
 * Core emulator and the embedded engine — through the compiled server and the ICAP wire: which
 * engine found what reaches X-Infection-Found, X-Virus-ID and the access log; an engine that
 * times out is blocked or allowed by the service's on_error, and the answer says so.
 *
 * Then config/examples/multi-backend.yaml served against local clamd, emulators and an upstream
 * icap-bridge, through its ${...} variables (and its MetaDefender weights renamed to match, see
 * test/helpers/multi-backend-example.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type EmulatorHandle } from '../../emulators/metadefender/emulator.js';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { spawnCli, type CliProcess } from '../helpers/cli-process.js';
import { BODY_MARKER, HAVE_CLAMD, SIG, startClamd, type RunningClamd } from '../helpers/clamd.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, EICAR, httpRequestHead } from '../helpers/icap-messages.js';
import type { ParsedResponse } from '../helpers/icap-response.js';
import { MULTI_BACKEND_EXAMPLE, withCoreWeightsRenamed } from '../helpers/multi-backend-example.js';

/** Names the emulator's two default engines give EICAR (emulators/metadefender/config.ts). */
const MD_EICAR = ['Win.Test.EICAR_HDB-1', 'EICAR-Test-File'];
const BUILTIN_EICAR = 'EICAR-Test-File';
/** The slow emulator answers polls after this; the backend gives up well before. */
const SLOW_POLL_MS = 3_000;
const SLOW_TIMEOUT_MS = 500;

let clamd: RunningClamd;
let core: EmulatorHandle;
let slow: EmulatorHandle;
let srv: ChildServer;

const filler = (size: number, seed = 'multi-engine clean filler\n'): Buffer => Buffer.alloc(size, seed);

interface Exchange {
  final: ParsedResponse;
  statuses: number[];
}

/** One RESPMOD on a fresh connection; `url` identifies its access record. */
async function respmod(port: number, service: string, url: string, body: Buffer, opts: { allow204?: boolean; preview?: number } = {}): Promise<Exchange> {
  const req = buildRequest({
    service,
    reqHdr: httpRequestHead(url),
    body: [body],
    headers: opts.allow204 === false ? [] : [['Allow', '204']],
    ...(opts.preview !== undefined && { preview: opts.preview }),
  });
  const client = await TestClient.connect(port);
  try {
    client.write(req.first);
    const statuses: number[] = [];
    let final = await client.read(15_000);
    statuses.push(final.status);
    if (final.status === 100) {
      client.write(req.rest);
      final = await client.read(15_000);
      statuses.push(final.status);
    }
    return { final, statuses };
  } finally {
    client.close();
  }
}

const infectionNames = (r: ParsedResponse): string[] =>
  (r.headers.get('x-infection-found') ?? []).map((v) => /Threat=([^;]*);/.exec(v)?.[1] ?? `unparsed: ${v}`);

function expectBlockPage(r: ParsedResponse): void {
  expect(r.status).toBe(200);
  expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
}

beforeAll(async () => {
  if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
  clamd = await startClamd();
  core = await startEmulator({ scanDurationMs: 20 });
  slow = await startEmulator({ scanDurationMs: 0, faults: { latencyMs: { poll: SLOW_POLL_MS } } });
  const engines = (md: string) => `[clamav, ${md}, builtin]`;
  srv = await startChildServer(`backends:
  clamav: { type: clamd, endpoints: ["${clamd.tcpEndpoint}"], read_timeout_ms: 10000 }
  core: { type: metadefender, endpoints: ["${core.url}"], timeout_ms: 10000, poll_initial_ms: 10, poll_max_ms: 50 }
  slowcore: { type: metadefender, endpoints: ["${slow.url}"], timeout_ms: ${SLOW_TIMEOUT_MS}, poll_initial_ms: 10, poll_max_ms: 50 }
  builtin: { type: builtin, workers: 1 }
services:
  multi: { methods: [RESPMOD], backends: ${engines('core')}, on_error: block }
  slowblock: { methods: [RESPMOD], backends: ${engines('slowcore')}, on_error: block }
  slowallow: { methods: [RESPMOD], backends: ${engines('slowcore')}, on_error: allow }
`);
});

afterAll(async () => {
  await srv?.stop();
  await core?.close();
  await slow?.close();
  await clamd?.stop();
});

describe('clamd + MetaDefender + builtin in parallel', () => {
  it('clean body → 204, three clean scans in the access log', async () => {
    const url = 'http://origin.test/multi/clean.bin';
    const { final } = await respmod(srv.port, 'multi', url, filler(40_000));
    expect(final.status).toBe(204);
    expect(final.header('X-ICAP-Bridge-Decision')).toBe('allow; reason=clean');
    const record = await srv.recordFor(url);
    expect(record).toMatchObject({ verdict: 'clean', threats: [], scan_errors: [] });
    expect(record.scans).toEqual([
      expect.objectContaining({ backend: 'clamav', endpoint: clamd.tcpEndpoint, outcome: 'clean' }),
      expect.objectContaining({ backend: 'core', endpoint: expect.stringContaining(String(core.port)), outcome: 'clean' }),
      expect.objectContaining({ backend: 'builtin', outcome: 'clean' }),
    ]);
  });

  it('EICAR → blocked; X-Infection-Found names what each engine found, X-Virus-ID the first', async () => {
    const url = 'http://origin.test/multi/eicar.com';
    const { final, statuses } = await respmod(srv.port, 'multi', url, Buffer.concat([filler(3000), EICAR, filler(500)]), { preview: 1024 });
    expect(statuses).toEqual([100, 200]);
    expectBlockPage(final);
    // One entry per distinct name: builtin's name is also one of the emulator's engines.
    expect(infectionNames(final)).toEqual([SIG.eicar, ...MD_EICAR]);
    expect(final.header('X-Virus-ID')).toBe(SIG.eicar);
    expect(final.header('X-ICAP-Bridge-Decision')).toBe('block; reason=infected');
    const page = final.body!.toString();
    for (const name of [SIG.eicar, ...MD_EICAR]) expect(page).toContain(name);
    const record = await srv.recordFor(url);
    expect(record).toMatchObject({ verdict: 'infected', http_status: 403, threats: [SIG.eicar, ...MD_EICAR, BUILTIN_EICAR] });
    expect((record.scans as { backend: string; outcome: string }[]).map((s) => `${s.backend}:${s.outcome}`)).toEqual([
      'clamav:infected',
      'core:infected',
      'builtin:infected',
    ]);
  });

  it('a body only clamd detects → blocked, naming clamd\'s threat alone', async () => {
    const url = 'http://origin.test/multi/marker.txt';
    const { final } = await respmod(srv.port, 'multi', url, Buffer.concat([filler(10_000), BODY_MARKER, filler(10_000)]));
    expectBlockPage(final);
    expect(infectionNames(final)).toEqual([SIG.body]);
    expect(final.header('X-Virus-ID')).toBe(SIG.body);
    const record = await srv.recordFor(url);
    expect(record).toMatchObject({ verdict: 'infected', threats: [SIG.body] });
    expect((record.scans as { backend: string; outcome: string }[]).map((s) => `${s.backend}:${s.outcome}`)).toEqual([
      'clamav:infected',
      'core:clean',
      'builtin:clean',
    ]);
  });
});

describe('one engine timing out', () => {
  it('on_error block: a clean body is blocked, the decision names the engine and the timeout', async () => {
    const url = 'http://origin.test/slow/block.bin';
    const started = Date.now();
    const { final } = await respmod(srv.port, 'slowblock', url, filler(20_000));
    const tookMs = Date.now() - started;
    expectBlockPage(final);
    expect(final.header('X-ICAP-Bridge-Decision')).toMatch(/^block; reason=error-policy; errors=slowcore:timeout\b/);
    expect(final.headers.get('x-infection-found')).toBeUndefined();
    // Bounded by the backend's timeout, not by the emulator's slow polls.
    expect(tookMs).toBeLessThan(SLOW_POLL_MS);
    const record = await srv.recordFor(url);
    expect(record).toMatchObject({ verdict: 'error-blocked', reason: 'error-policy', scan_errors: [expect.stringMatching(/^slowcore:timeout\b/)] });
    expect(record.scans).toContainEqual(expect.objectContaining({ backend: 'slowcore', outcome: 'error:timeout' }));
    expect(record.scans).toContainEqual(expect.objectContaining({ backend: 'clamav', outcome: 'clean' }));
  });

  it('on_error allow: 204, or a 200 echo without Allow: 204; the decision says allowed despite the timeout', async () => {
    const url204 = 'http://origin.test/slow/allow-204.bin';
    const a = await respmod(srv.port, 'slowallow', url204, filler(20_000));
    expect(a.final.status).toBe(204);
    expect(a.final.header('X-ICAP-Bridge-Decision')).toMatch(/^allow; reason=error-policy; errors=slowcore:timeout\b/);
    expect(await srv.recordFor(url204)).toMatchObject({ verdict: 'error-allowed', scan_errors: [expect.stringMatching(/^slowcore:timeout\b/)] });

    const urlEcho = 'http://origin.test/slow/allow-echo.bin';
    const body = filler(20_000, 'echo me back\n');
    const b = await respmod(srv.port, 'slowallow', urlEcho, body, { allow204: false });
    expect(b.final.status).toBe(200);
    expect(b.final.resHdr).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(b.final.body!.equals(body)).toBe(true);
    expect(b.final.header('X-ICAP-Bridge-Decision')).toMatch(/^allow; reason=error-policy; errors=slowcore:timeout\b/);
    expect(await srv.recordFor(urlEcho)).toMatchObject({ verdict: 'error-allowed', scan_errors: [expect.stringMatching(/^slowcore:timeout\b/)] });
  });

  it('on_error allow never lets a threat through: EICAR is blocked as infected, the timeout still listed', async () => {
    const url = 'http://origin.test/slow/eicar.com';
    const { final } = await respmod(srv.port, 'slowallow', url, EICAR);
    expectBlockPage(final);
    expect(infectionNames(final)).toEqual([SIG.eicar, BUILTIN_EICAR]);
    expect(final.header('X-ICAP-Bridge-Decision')).toMatch(/^block; reason=infected; errors=slowcore:timeout\b/);
    expect(await srv.recordFor(url)).toMatchObject({ verdict: 'infected', scan_errors: [expect.stringMatching(/^slowcore:timeout\b/)] });
  });
});

// ─── config/examples/multi-backend.yaml, served ─────────────────────────────────────────────────

interface ExampleServer extends CliProcess {
  host: string;
}

/** A loopback address of its own (127.x.y.z), so the example's fixed ports 1344 and 9090 are free. */
function privateLoopbackAddress(): string {
  const octet = (): number => 2 + Math.floor(Math.random() * 250);
  return `127.${octet()}.${octet()}.${octet()}`;
}

async function serveExample(configPath: string, env: Record<string, string>, host: string): Promise<ExampleServer> {
  const cli = await spawnCli(configPath, { env: { ...process.env, ...env }, startTimeoutMs: 20_000 });
  return { ...cli, host };
}

describe('config/examples/multi-backend.yaml served against local clamd and emulators', () => {
  const APIKEY = 'example-apikey-0123';
  /** The example's avscan service, in order. */
  const ENGINES = ['clamav', 'core', 'builtin', 'upstream'];
  let nodes: EmulatorHandle[] = [];
  let upstream: ChildServer | undefined;
  let example: ExampleServer | undefined;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'icap-bridge-example-'));
    nodes = await Promise.all([0, 1, 2].map(() => startEmulator({ scanDurationMs: 10, apikeys: [APIKEY] })));
    const env: Record<string, string> = {
      MD_APIKEY: APIKEY,
      MD_CORE_1: nodes[0]!.url,
      MD_CORE_2: nodes[1]!.url,
      MD_CORE_3: nodes[2]!.url,
      CLAMD_TCP: clamd.tcpEndpoint,
      CLAMD_SOCKET: clamd.socketPath,
      ICAP_SPOOL_DIR: dir,
    };
    // The upstream ICAP scanners: another icap-bridge with its default services (avscan, alias virus_scan).
    upstream = await startChildServer('');
    env.ICAP_UPSTREAM_1 = `icap://127.0.0.1:${upstream.port}/avscan`;
    env.ICAP_UPSTREAM_2 = `icap://127.0.0.1:${upstream.port}/virus_scan`;
    const text = withCoreWeightsRenamed(readFileSync(MULTI_BACKEND_EXAMPLE, 'utf8'), {
      'http://md-core-1.internal:8008': nodes[0]!.url,
      'http://md-core-2.internal:8008': nodes[1]!.url,
      'http://md-core-3.internal:8008': nodes[2]!.url,
    });
    const configPath = join(dir, 'multi-backend.yaml');
    writeFileSync(configPath, text);
    // A random 127/8 address may be taken by another test's wildcard listener: a few tries.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3 && example === undefined; attempt++) {
      const host = privateLoopbackAddress();
      try {
        example = await serveExample(configPath, { ...env, ICAP_LISTEN_HOST: host, ICAP_ADMIN_HOST: host }, host);
      } catch (err) {
        lastError = err;
      }
    }
    if (example === undefined) throw lastError;
  });

  afterAll(async () => {
    await example?.stop();
    await upstream?.stop();
    await Promise.all(nodes.map((n) => n.close()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function send(body: Buffer, service: string, url: string): Promise<ParsedResponse> {
    const client = await TestClient.connect(1344, example!.host);
    try {
      client.write(buildRequest({ service, reqHdr: httpRequestHead(url), body: [body], headers: [['Allow', '204']] }).first);
      return await client.read(15_000);
    } finally {
      client.close();
    }
  }

  const accessFor = (url: string): Promise<Record<string, unknown>> => example!.recordFor(url);

  it('EICAR on avscan → blocked by all four engines, each naming it', async () => {
    const url = 'http://origin.test/example/eicar.com';
    const r = await send(EICAR, 'avscan', url);
    expectBlockPage(r);
    expect(infectionNames(r)).toEqual(expect.arrayContaining([SIG.eicar, ...MD_EICAR]));
    const record = await accessFor(url);
    expect((record.scans as { backend: string; outcome: string }[]).map((s) => `${s.backend}:${s.outcome}`)).toEqual(ENGINES.map((e) => `${e}:infected`));
  });

  it('clean bodies on avscan → 204; the apikey from ${MD_APIKEY} reaches Core; md-core-3 (weight 3) gets most jobs', async () => {
    for (let i = 0; i < 10; i++) {
      const url = `http://origin.test/example/clean-${i}.txt`;
      const r = await send(filler(2000 + i, `distinct clean file ${i}\n`), 'avscan', url);
      expect(r.status, url).toBe(204);
      const record = await accessFor(url);
      expect(record.verdict).toBe('clean');
      expect((record.scans as { backend: string; outcome: string }[]).map((s) => `${s.backend}:${s.outcome}`)).toEqual(ENGINES.map((e) => `${e}:clean`));
    }
    const submits = nodes.map((n) => n.stats.requests.filter((q) => q.route === 'submit'));
    for (const s of submits) for (const q of s) expect(q.headers.apikey).toBe(APIKEY);
    const counts = submits.map((s) => s.length);
    console.log(`example: MetaDefender submits per node (weights 1, 1, 3): ${counts.join(', ')}`);
    expect(counts[0]! + counts[1]! + counts[2]!).toBeGreaterThanOrEqual(10);
    expect(counts[2]!).toBeGreaterThan(counts[0]!);
    expect(counts[2]!).toBeGreaterThan(counts[1]!);
  });

  it('reqmod (clamd + builtin only): an upload with the clamd-only marker is blocked by clamd', async () => {
    const client = await TestClient.connect(1344, example!.host);
    try {
      const reqHdr = 'POST http://origin.test/example/upload HTTP/1.1\r\nHost: origin.test\r\n\r\n';
      client.write(buildRequest({ method: 'REQMOD', service: 'OMSScanReq-AV', reqHdr, body: [BODY_MARKER] }).first);
      const r = await client.read(15_000);
      expectBlockPage(r);
      expect(infectionNames(r)).toEqual([SIG.body]);
    } finally {
      client.close();
    }
  });

  it('admin /readyz on ${ICAP_ADMIN_HOST}:9090 reports every backend ready', async () => {
    const res = await fetch(`http://${example!.host}:9090/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ready: true, problems: {} });
  });
});
