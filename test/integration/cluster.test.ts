/**
 * server.processes: 2 on the real CLI (src/cluster/): a primary and two workers sharing the
 * listener. Connections land on both workers (the `pid` field of their access lines); /metrics
 * on the primary sums both; SIGHUP reloads every worker (an invalid file is rejected once, by the
 * primary); a killed worker is replaced and its spool directory, temp file included, removed;
 * SIGTERM stops every worker and the primary exits 0.
 *
 * The tests run in order and share one server.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
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

  it('replaces a killed worker and removes its spool directory with the temp file in it', async () => {
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

    process.kill(victim, 'SIGKILL');
    await c.waitClosed();
    c.close();
    const replacement = await waitFor(
      'a replacement worker',
      () => primaryLogs('worker ready').find((l) => !seenPids.has(l.worker_pid as number))?.worker_pid as number | undefined,
      20_000,
    );
    seenPids.add(replacement);
    expect(existsSync(join(srv.spoolDir, spooled))).toBe(false);
    expect(workerPidsNow()).toHaveLength(2);
    expect(workerPidsNow()).toContain(replacement);

    // The replacement reads the current file: same ISTag; and it takes connections.
    const first = optionsPids().length;
    expect(new Set(await optionsOnNewConnections(6))).toEqual(new Set([current]));
    expect(optionsPids().slice(first)).toContain(replacement);
    const metrics = await adminGet('/metrics');
    expect(metricValue(metrics.text, 'icap_bridge_cluster_worker_restarts_total')).toBe(1);
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
