/**
 * server.processes: 2 on the real CLI (src/cluster/): a primary and two workers sharing the
 * listener. Connections land on both workers (the `pid` field of their access lines); /metrics
 * on the primary sums both, and its counters do not go down when a worker dies; SIGHUP reloads
 * every worker (an invalid file is rejected once, by the primary); a killed worker is replaced
 * and its spool directory, temp file included, removed; the replacement runs the configuration
 * the primary accepted, whatever the file says now (invalid, edited without a reload, or with a
 * listener change that only a restart applies); SIGTERM stops every worker and the primary exits 0.
 *
 * The tests run in order and share one server.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { freePort, startChildServer, type ChildServer } from '../helpers/child-server.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest } from '../helpers/icap-messages.js';
import { waitFor as waitUntil } from '../helpers/wait.js';
import { metricValue } from '../helpers/metrics-text.js';
import { isAlive } from '../../tools/processes.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let srv: ChildServer;
let adminPort: number;
let configPath: string;
/** Every worker pid seen, so afterAll can make sure none outlives the test. */
const seenPids = new Set<number>();

/** Cluster starts and restarts are slower than one process: the shared waitFor, with a longer deadline. */
const waitFor = <T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> =>
  waitUntil(what, check, { timeoutMs, intervalMs: 25 });

const primaryLogs = (msg: string): Record<string, unknown>[] => srv.logs().filter((l) => l.role === 'primary' && l.msg === msg);

/** The pid field of OPTIONS access lines, in log order. */
const optionsPids = (): number[] =>
  srv
    .logs()
    .filter((l) => l.msg === 'access' && (l.access as { method?: string }).method === 'OPTIONS')
    .map((l) => l.pid as number);

/** `n` OPTIONS requests, each on its own connection; returns the ISTags answered. */
async function optionsOnNewConnections(n: number): Promise<string[]> {
  const before = optionsPids().length;
  const tags: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    const r = await c.read();
    expect(r.status).toBe(200);
    tags.push(r.header('ISTag')!);
    c.close();
  }
  await waitFor('access lines', () => (optionsPids().length >= before + n ? true : undefined));
  return tags;
}

async function adminGet(path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`);
  return { status: res.status, text: await res.text() };
}

function workerPidsNow(): number[] {
  const started = primaryLogs('icap-bridge started')[0]!.worker_pids as number[];
  const exited = new Set(primaryLogs('worker exited').map((l) => l.worker_pid as number));
  const readied = primaryLogs('worker ready').map((l) => l.worker_pid as number);
  return [...new Set([...started, ...readied])].filter((p) => !exited.has(p));
}

/** SIGKILLs worker `victim` and waits for its replacement to be ready; returns the replacement's pid. */
async function killAndReplace(victim: number): Promise<number> {
  expect(workerPidsNow()).toContain(victim);
  process.kill(victim, 'SIGKILL');
  const replacement = await waitFor(
    'a replacement worker',
    () => primaryLogs('worker ready').find((l) => !seenPids.has(l.worker_pid as number))?.worker_pid as number | undefined,
    20_000,
  );
  seenPids.add(replacement);
  await waitFor('the old worker gone from the logs', () => !workerPidsNow().includes(victim));
  expect(workerPidsNow()).toHaveLength(2);
  return replacement;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });
}

/** Every counter and histogram sample of a /metrics text (the primary's own cluster gauges aside). */
function cumulativeSamples(text: string): Map<string, number> {
  const cumulative = new Set(
    text
      .split('\n')
      .map((l) => /^# TYPE (\S+) (counter|histogram)$/.exec(l)?.[1])
      .filter((n) => n !== undefined),
  );
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const series = line.slice(0, line.lastIndexOf(' '));
    const name = series.split('{')[0]!.replace(/_(bucket|sum|count)$/, '');
    if (cumulative.has(name) || cumulative.has(series.split('{')[0]!)) samples.set(series, Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return samples;
}

const ADMIN = 'admin:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n';
const services = (onError: string): string => `services:\n  respmod: { methods: [RESPMOD], on_error: ${onError} }\n`;

beforeAll(async () => {
  srv = await startChildServer(ADMIN + services('block'), '  processes: 2\n  timeouts: { shutdown_grace_ms: 3000 }\n');
  configPath = join(srv.dir, 'icap-bridge.yaml');
  adminPort = primaryLogs('admin listening')[0]!.port as number;
  for (const pid of primaryLogs('icap-bridge started')[0]!.worker_pids as number[]) seenPids.add(pid);
});

afterAll(async () => {
  await srv?.stop('SIGKILL');
  for (const pid of seenPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
});

describe('server.processes: 2', () => {
  it('starts two workers besides the primary, and connections land on both', async () => {
    const workers = workerPidsNow();
    expect(workers).toHaveLength(2);
    expect(workers).not.toContain(srv.pid);
    await optionsOnNewConnections(8);
    expect(new Set(optionsPids())).toEqual(new Set(workers));
  });

  it('serves /metrics summed over the workers and /readyz from all of them', async () => {
    const clean = buildRequest({ body: ['clean data'], headers: [['Allow', '204']] }).first;
    for (let i = 0; i < 6; i++) {
      const c = await TestClient.connect(srv.port);
      c.write(clean);
      expect((await c.read()).status).toBe(204);
      c.close();
    }
    await sleep(100);
    const { status, text } = await adminGet('/metrics');
    expect(status).toBe(200);
    expect(metricValue(text, 'icap_bridge_transactions_total', { method: 'OPTIONS', service: 'respmod' })).toBe(8);
    expect(metricValue(text, 'icap_bridge_transactions_total', { method: 'RESPMOD', service: 'respmod', status: '204', verdict: 'clean' })).toBe(6);
    expect(metricValue(text, 'icap_bridge_transaction_duration_seconds_count', { method: 'RESPMOD', service: 'respmod' })).toBe(6);
    expect(metricValue(text, 'icap_bridge_cluster_workers')).toBe(2);
    // min over the workers, not a sum of 2
    expect(metricValue(text, 'icap_bridge_backend_endpoint_up', { backend: 'builtin' })).toBe(1);
    const ready = await adminGet('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ ready: true, problems: {} });
  });

  it('SIGHUP: an invalid file is rejected once and nothing changes; a valid one changes the ISTag on every worker', async () => {
    const [before] = await optionsOnNewConnections(1);
    const good = readFileSync(configPath, 'utf8');

    writeFileSync(configPath, `${good}bad: [\n`);
    process.kill(srv.pid, 'SIGHUP');
    await waitFor('reload rejected', () => primaryLogs('reload rejected: keeping the running configuration')[0]);
    expect(new Set(await optionsOnNewConnections(4))).toEqual(new Set([before]));
    // The workers never saw the bad file.
    expect(srv.logs().filter((l) => l.msg === 'configuration reloaded')).toHaveLength(0);

    writeFileSync(configPath, good.replace(services('block'), services('allow')));
    process.kill(srv.pid, 'SIGHUP');
    const reloaded = await waitFor('configuration reloaded', () => primaryLogs('configuration reloaded')[0]);
    const perWorker = reloaded.workers as { worker_pid: number; ok: boolean; istags: Record<string, string> }[];
    expect(perWorker.map((w) => w.worker_pid).sort()).toEqual(workerPidsNow().sort());
    for (const w of perWorker) {
      expect(w.ok).toBe(true);
      expect(w.istags.respmod).not.toBe(before);
    }
    const first = optionsPids().length;
    const after = await optionsOnNewConnections(6);
    expect(new Set(after)).toEqual(new Set([perWorker[0]!.istags.respmod]));
    expect(new Set(optionsPids().slice(first))).toEqual(new Set(workerPidsNow()));
  });

  it('replaces a killed worker and removes its spool directory with the temp file in it; /metrics does not go down', async () => {
    const [current] = await optionsOnNewConnections(1);
    // A body past spool.memory_bytes (1 MiB) goes to a temp file; stop before the last-chunk.
    const req = buildRequest({ body: [Buffer.alloc(1536 * 1024, 0x61)], headers: [['Allow', '204']] }).first;
    const c = await TestClient.connect(srv.port);
    c.write(req.subarray(0, req.length - 5));
    const spooled = await waitFor('a temp file', () => {
      for (const dir of readdirSync(srv.spoolDir).filter((d) => d.startsWith('icap-bridge-worker-'))) {
        if (readdirSync(join(srv.spoolDir, dir)).some((f) => f.endsWith('.body'))) return dir;
      }
      return undefined;
    });
    const victim = Number(spooled.slice('icap-bridge-worker-'.length));
    expect(workerPidsNow()).toContain(victim);
    // What the victim counted so far is in this scrape (it served some of the OPTIONS above).
    const before = cumulativeSamples((await adminGet('/metrics')).text);
    expect(before.get('icap_bridge_transactions_total{method="OPTIONS",service="respmod",status="200",verdict="none"}')).toBeGreaterThan(0);

    const replacement = await killAndReplace(victim);
    await c.waitClosed();
    c.close();
    expect(existsSync(join(srv.spoolDir, spooled))).toBe(false);
    expect(workerPidsNow()).toContain(replacement);

    // A counter that drops reads as a reset to Prometheus: every one, histograms included, holds.
    const after = cumulativeSamples((await adminGet('/metrics')).text);
    const dropped = [...before].filter(([series, value]) => (after.get(series) ?? 0) < value);
    expect(dropped).toEqual([]);
    expect(metricValue((await adminGet('/metrics')).text, 'icap_bridge_cluster_worker_restarts_total')).toBe(1);

    // The replacement runs the same configuration: same ISTag; and it takes connections.
    const first = optionsPids().length;
    expect(new Set(await optionsOnNewConnections(6))).toEqual(new Set([current]));
    expect(optionsPids().slice(first)).toContain(replacement);
  });

  it('after a rejected reload, a replacement runs the configuration the primary kept, not the invalid file', async () => {
    const [current] = await optionsOnNewConnections(1);
    const good = readFileSync(configPath, 'utf8');
    const rejectedBefore = primaryLogs('reload rejected: keeping the running configuration').length;
    writeFileSync(configPath, `${good}bad: [\n`);
    process.kill(srv.pid, 'SIGHUP');
    await waitFor('reload rejected', () => primaryLogs('reload rejected: keeping the running configuration').length > rejectedBefore);

    const replacement = await killAndReplace(workerPidsNow()[0]!);
    expect(primaryLogs('worker exited').filter((l) => l.code === 2)).toEqual([]);
    const first = optionsPids().length;
    expect(new Set(await optionsOnNewConnections(6))).toEqual(new Set([current]));
    expect(optionsPids().slice(first)).toContain(replacement);
    const ready = await adminGet('/readyz');
    expect(ready.status).toBe(200);
    writeFileSync(configPath, good);
  });

  it('a file edited without a reload is not what a replacement runs: the ISTags stay the same on every worker', async () => {
    const [current] = await optionsOnNewConnections(1);
    const good = readFileSync(configPath, 'utf8');
    // on_error is part of the ISTag.
    const [from, to] = good.includes(services('allow')) ? ['allow', 'block'] : ['block', 'allow'];
    writeFileSync(configPath, good.replace(services(from), services(to)));
    const replacement = await killAndReplace(workerPidsNow()[0]!);
    const first = optionsPids().length;
    expect(new Set(await optionsOnNewConnections(8))).toEqual(new Set([current]));
    expect(new Set(optionsPids().slice(first))).toEqual(new Set(workerPidsNow()));
    expect(optionsPids().slice(first)).toContain(replacement);
    writeFileSync(configPath, good);
  });

  it('a listener change that a reload accepted takes effect on restart only: a replacement keeps the port its siblings serve', async () => {
    const good = readFileSync(configPath, 'utf8');
    const newPort = await freePort();
    const warned = primaryLogs('listener or admin addresses changed: they take effect on restart, not on reload').length;
    const reloaded = primaryLogs('configuration reloaded').length;
    writeFileSync(configPath, good.replace(`port: ${srv.port} }`, `port: ${newPort} }`));
    process.kill(srv.pid, 'SIGHUP');
    await waitFor('configuration reloaded', () => primaryLogs('configuration reloaded').length > reloaded);
    expect(primaryLogs('listener or admin addresses changed: they take effect on restart, not on reload')).toHaveLength(warned + 1);

    const replacement = await killAndReplace(workerPidsNow()[0]!);
    expect(await accepts(newPort)).toBe(false);
    const first = optionsPids().length;
    await optionsOnNewConnections(6);
    expect(optionsPids().slice(first)).toContain(replacement);
    writeFileSync(configPath, good);
  });

  it('SIGTERM: every worker stops, the primary exits 0, no worker directory is left', async () => {
    const workers = workerPidsNow();
    expect(workers).toHaveLength(2);
    expect(await srv.stop('SIGTERM')).toBe(0);
    for (const pid of workers) expect(isAlive(pid)).toBe(false);
    expect(readdirSync(srv.spoolDir)).toEqual([]);
    expect(primaryLogs('icap-bridge stopped')).toHaveLength(1);
  });
});
