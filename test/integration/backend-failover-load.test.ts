/**
 * Resilience under load (DESIGN.md "Backends and pools": balancing, passive ejection with a
 * cool-down, active checks, one retry elsewhere). The compiled server scans every body with two
 * backends at once: clamd (two private instances, one over TCP and one over its UNIX socket) and
 * MetaDefender Core (three emulator processes). Concurrent ICAP clients send clean and EICAR
 * bodies, with and without preview and Allow: 204, while the test:
 *
 *   warm-up ──► SIGKILL one emulator and one clamd ──► survivors only ──► restart both ──► back in use
 *
 * Asserted: every transaction is answered; every clean body is 204 (or a byte-identical 200 echo
 * without Allow: 204); every EICAR body is blocked with the 403 page — a clean body that met a
 * dying clamd mid-stream must be re-scanned elsewhere, not blocked; for transactions sent after a
 * short settle window, no scan is recorded on a killed endpoint, and /metrics shows the killed
 * endpoints down with their scan counts frozen; after the restart both take scans again within a
 * bounded time. Figures (transactions, tps, time to recovery) are printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { HAVE_CLAMD, startClamd, type RunningClamd } from '../helpers/clamd.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, EICAR, httpRequestHead, httpResponseHead } from '../helpers/icap-messages.js';
import type { ParsedResponse } from '../helpers/icap-response.js';
import { startEmulatorProcess, type EmulatorProcess } from '../helpers/metadefender-process.js';

const CLIENTS = 12;
const WARM_MS = 4_000;
const DOWN_MS = 4_000;
/** Transactions sent this soon after the kill may still have met the dead endpoints. */
const SETTLE_MS = 1_000;
/** From "restarted and listening" to "scans recorded on it again". */
const RECOVERY_BUDGET_MS = 8_000;
const TRANSACTION_TIMEOUT_MS = 20_000;
const PREVIEW = 1024;
const SIZES = [2 * 1024, 8 * 1024, 31 * 1024, 64 * 1024, 100 * 1024, 256 * 1024];

let clamdA: RunningClamd;
let clamdB: RunningClamd;
let cores: EmulatorProcess[] = [];
let srv: ChildServer;
let adminPort: number;

/** Printable pseudo-random filler: no signature of the test DB can occur in it by chance. */
const FILLER = (() => {
  const b = Buffer.alloc(SIZES.at(-1)!);
  let x = 0x2545f491;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = 0x20 + ((x >>> 16) % 95);
  }
  return b;
})();

interface Spec {
  url: string;
  infected: boolean;
  body: Buffer;
  preview: boolean;
  allow204: boolean;
}

/** A deterministic mix per worker `w` and sequence `k`: a quarter EICAR, sizes, preview and 204 varied. */
function specFor(w: number, k: number): Spec {
  const infected = k % 4 === 3;
  const size = SIZES[(k * 7 + w) % SIZES.length]!;
  const offset = (k * 131 + w * 17) % 4096;
  let body: Buffer;
  if (!infected) body = Buffer.from(FILLER.subarray(offset % (FILLER.length - size + 1)).subarray(0, size));
  else if (size === SIZES[0]) body = EICAR;
  else {
    body = Buffer.from(FILLER.subarray(0, size));
    EICAR.copy(body, (k * 977 + w * 31) % (size - EICAR.length));
  }
  return { url: `http://load.test/w${w}/t${k}/${infected ? 'eicar.com' : 'clean.bin'}`, infected, body, preview: (k + w) % 2 === 0, allow204: (k + w * 3) % 3 !== 0 };
}

interface Outcome {
  spec: Spec;
  sentAt: number;
  doneAt: number;
  /** null when no answer came (connection lost, timeout). */
  response: ParsedResponse | null;
  error?: string;
}

async function transact(client: TestClient, spec: Spec): Promise<ParsedResponse> {
  const req = buildRequest({
    reqHdr: httpRequestHead(spec.url),
    resHdr: httpResponseHead(spec.body.length),
    body: [spec.body],
    headers: spec.allow204 ? [['Allow', '204']] : [],
    ...(spec.preview && { preview: PREVIEW }),
  });
  client.write(req.first);
  let r = await client.read(TRANSACTION_TIMEOUT_MS);
  if (r.status === 100) {
    client.write(req.rest);
    r = await client.read(TRANSACTION_TIMEOUT_MS);
  }
  return r;
}

/** Why an answer is wrong for its spec, or null when it is right. */
function wrongAnswer(o: Outcome): string | null {
  const r = o.response;
  if (r === null) return `no answer: ${o.error}`;
  const decision = r.header('X-ICAP-Bridge-Decision') ?? '';
  if (o.spec.infected) {
    if (r.status === 200 && /^HTTP\/1\.1 403 /.test(r.resHdr ?? '') && decision.startsWith('block;')) return null;
    return `EICAR not blocked: ${r.status} ${decision}`;
  }
  if (o.spec.allow204) return r.status === 204 && decision === 'allow; reason=clean' ? null : `clean not 204: ${r.status} ${decision}`;
  if (r.status !== 200 || decision !== 'allow; reason=clean') return `clean not echoed: ${r.status} ${decision}`;
  return r.body?.equals(o.spec.body) ? null : 'echo differs from the body sent';
}

/** Sum of a metric's samples whose labels include `labels`. */
function metric(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

const metricsText = async (): Promise<string> => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Scan = { backend: string; endpoint?: string; outcome: string; ms: number };
type Access = { url?: string; scans: Scan[]; verdict: string };

beforeAll(async () => {
  if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
  // Every process that did start is kept where afterAll stops it, even if another failed.
  const emulators = await Promise.allSettled([0, 1, 2].map(() => startEmulatorProcess({ scanDurationMs: 20, jobRetentionMs: 30_000 })));
  cores = emulators.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = emulators.find((r) => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  clamdA = await startClamd({ maxThreads: 4, maxQueue: 32 });
  clamdB = await startClamd({ maxThreads: 4, maxQueue: 32 });
  // Short health intervals and cool-downs so ejection and recovery happen within the test.
  const pool = 'eject_after: 1, cooldown_ms: 1000, health_interval_ms: 250, health_timeout_ms: 500, max_queue: 64';
  srv = await startChildServer(`backends:
  clamav:
    { type: clamd, endpoints: ["${clamdA.tcpEndpoint}", "${clamdB.socketPath}"], connect_timeout_ms: 500, read_timeout_ms: 15000,
      stream_max_bytes: 1048576, max_concurrency: 6, ${pool} }
  core:
    { type: metadefender, endpoints: [${cores.map((c) => `"${c.url}"`).join(', ')}], timeout_ms: 15000, poll_initial_ms: 10, poll_max_ms: 40,
      max_concurrency: 8, ${pool} }
services:
  respmod:
    methods: [RESPMOD]
    backends: [clamav, core]
    on_error: block
    preview_bytes: ${PREVIEW}
    # Commit-on-idle answers before the verdict (a Squid 5.7 workaround); this test checks verdicts.
    commit_on_idle: { enabled: false }
admin: { enabled: true, host: 127.0.0.1, port: 0 }
# Repeated bodies must reach the engines: this test counts scans per endpoint.
cache: { enabled: false }
`);
  adminPort = srv.logs().find((l) => l.msg === 'admin listening')!.port as number;
}, 90_000);

afterAll(async () => {
  await srv?.stop();
  await Promise.all([clamdA?.stop(), clamdB?.stop(), ...cores.map((c) => c.stop())]);
});

describe('clamd ×2 + MetaDefender ×3 under load, one of each killed and restarted', () => {
  it('answers every transaction correctly, fails over, and takes the restarted endpoints back', async () => {
    const killedCore = cores[1]!;
    const isKilledClamd = (s: Scan): boolean => s.backend === 'clamav' && s.endpoint === clamdA.tcpEndpoint;
    const isKilledCore = (s: Scan): boolean => s.backend === 'core' && (s.endpoint ?? '').includes(`:${killedCore.port}`);
    const killedClamdLabel = { backend: 'clamav', endpoint: clamdA.tcpEndpoint };
    const killedCoreLabel = { backend: 'core', endpoint: killedCore.url };

    const outcomes: Outcome[] = [];
    const outcomeByUrl = new Map<string, Outcome>();
    const record = (o: Outcome): void => {
      outcomes.push(o);
      outcomeByUrl.set(o.spec.url, o);
    };
    let stop = false;
    /** Per worker: when its transaction in flight was sent (Infinity between transactions). */
    const inFlightSince: number[] = Array.from({ length: CLIENTS }, () => Infinity);
    const started = Date.now();
    const worker = async (w: number): Promise<void> => {
      let client: TestClient | null = null;
      for (let k = 0; !stop && k < 100_000; k++) {
        const spec = specFor(w, k);
        const sentAt = Date.now();
        inFlightSince[w] = sentAt;
        try {
          client ??= await TestClient.connect(srv.port);
          const response = await transact(client, spec);
          record({ spec, sentAt, doneAt: Date.now(), response });
          // The server closes after some answers (errors, the last of max_requests_per_connection,
          // which says Connection: close): open a new connection for the next one.
          if (client.closed || response.header('Connection') === 'close') {
            client.close();
            client = null;
          }
        } catch (err) {
          record({ spec, sentAt, doneAt: Date.now(), response: null, error: err instanceof Error ? err.message : String(err) });
          client?.close();
          client = null;
        }
        inFlightSince[w] = Infinity;
      }
      client?.close();
    };
    const workers = Array.from({ length: CLIENTS }, (_, w) => worker(w));

    let killedAt = 0;
    /** From here on, transactions must meet survivors only. */
    let settledAt = 0;
    let drainMs = 0;
    let restartBegan = 0;
    const recovered: { clamd?: number; core?: number; clamdUp?: number; coreUp?: number } = {};
    const snapshots: Record<string, { killedClamd: number; killedCore: number; survivors: number; up: [number, number] }> = {};
    const snapshot = async (label: string): Promise<void> => {
      const text = await metricsText();
      const count = (labels: Record<string, string>): number => metric(text, 'icap_bridge_scan_duration_seconds_count', labels);
      snapshots[label] = {
        killedClamd: count(killedClamdLabel),
        killedCore: count(killedCoreLabel),
        survivors: count({ backend: 'clamav', endpoint: clamdB.socketPath }) + count({ backend: 'core', endpoint: cores[0]!.url }) + count({ backend: 'core', endpoint: cores[2]!.url }),
        up: [metric(text, 'icap_bridge_backend_endpoint_up', killedClamdLabel), metric(text, 'icap_bridge_backend_endpoint_up', killedCoreLabel)],
      };
    };

    try {
      await sleep(WARM_MS);
      await snapshot('before kill');
      await Promise.all([killedCore.kill('SIGKILL'), clamdA.kill('SIGKILL')]);
      killedAt = Date.now();
      await sleep(SETTLE_MS);
      settledAt = Date.now();
      // Metrics count a scan when it ends: wait (bounded) until nothing sent before settledAt is in
      // flight, so the killed endpoints' counts can only move again if new traffic reaches them.
      while (inFlightSince.some((t) => t < settledAt) && Date.now() - settledAt < TRANSACTION_TIMEOUT_MS) await sleep(25);
      drainMs = Date.now() - settledAt;
      await snapshot('after settle');
      await sleep(Math.max(0, killedAt + DOWN_MS - Date.now()));
      await snapshot('before restart');

      // Each is timed from its own "listening again"; the survivors-only window ends when the first
      // restart begins. Metrics and access lines are watched while the restarts run.
      restartBegan = Date.now();
      let clamdBackAt = 0;
      let coreBackAt = 0;
      let restartsSettled = false;
      const restarts = Promise.all([killedCore.restart().then(() => (coreBackAt = Date.now())), clamdA.restart().then(() => (clamdBackAt = Date.now()))]);
      restarts.then(
        () => (restartsSettled = true),
        () => (restartsSettled = true),
      );
      // Bounded: the restarts themselves (clamd loads its DB, node starts the emulator), then the budget.
      while (Date.now() - restartBegan < 30_000) {
        if (restartsSettled && (Date.now() - Math.max(clamdBackAt, coreBackAt) > RECOVERY_BUDGET_MS || (recovered.clamd !== undefined && recovered.core !== undefined))) break;
        await sleep(250);
        const text = await metricsText();
        if (clamdBackAt > 0 && recovered.clamdUp === undefined && metric(text, 'icap_bridge_backend_endpoint_up', killedClamdLabel) === 1) recovered.clamdUp = Date.now() - clamdBackAt;
        if (coreBackAt > 0 && recovered.coreUp === undefined && metric(text, 'icap_bridge_backend_endpoint_up', killedCoreLabel) === 1) recovered.coreUp = Date.now() - coreBackAt;
        for (const r of srv.accessRecords() as unknown as Access[]) {
          const o = r.url === undefined ? undefined : outcomeByUrl.get(r.url);
          if (o === undefined || o.sentAt < restartBegan) continue;
          if (clamdBackAt > 0 && r.scans.some(isKilledClamd)) recovered.clamd = Math.min(recovered.clamd ?? Infinity, Math.max(0, o.doneAt - clamdBackAt));
          if (coreBackAt > 0 && r.scans.some(isKilledCore)) recovered.core = Math.min(recovered.core ?? Infinity, Math.max(0, o.doneAt - coreBackAt));
        }
      }
      await restarts;
      await sleep(500);
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    const elapsedS = (Date.now() - started) / 1000;
    await sleep(300); // the last access lines

    // ── every transaction answered, and answered right ──
    const wrong = outcomes.map((o) => ({ o, why: wrongAnswer(o) })).filter((x) => x.why !== null);
    const records = new Map((srv.accessRecords() as unknown as Access[]).map((r) => [r.url, r]));
    const infectedCount = outcomes.filter((o) => o.spec.infected).length;
    const byPhase = (from: number, to: number) => outcomes.filter((o) => o.sentAt >= from && o.sentAt < to);
    const perEndpoint = (list: Outcome[]): Record<string, number> => {
      const counts: Record<string, number> = {};
      for (const o of list) for (const s of records.get(o.spec.url)?.scans ?? []) counts[`${s.backend} ${s.endpoint}`] = (counts[`${s.backend} ${s.endpoint}`] ?? 0) + 1;
      return counts;
    };
    const down = byPhase(settledAt, restartBegan);
    console.log(
      [
        `load: ${outcomes.length} transactions (${infectedCount} EICAR) from ${CLIENTS} clients in ${elapsedS.toFixed(1)} s = ${(outcomes.length / elapsedS).toFixed(1)} tps`,
        `wrong or unanswered: ${wrong.length}${wrong.length ? `\n  ${wrong.slice(0, 20).map((x) => `${x.o.spec.url} (+${x.o.sentAt - killedAt} ms after kill): ${x.why}`).join('\n  ')}` : ''}`,
        `decisions: ${JSON.stringify(countBy(outcomes.map((o) => o.response?.header('X-ICAP-Bridge-Decision') ?? 'none')))}`,
        `scans per endpoint before the kill: ${JSON.stringify(perEndpoint(byPhase(0, killedAt)))}`,
        `scans per endpoint while down (sent ${SETTLE_MS} ms after the kill until restart): ${JSON.stringify(perEndpoint(down))}`,
        `transactions in flight ${SETTLE_MS} ms after the kill took ${drainMs} ms more to finish`,
        `scans recorded on a killed endpoint for transactions answered after the kill: ${JSON.stringify(countBy(
          byPhase(0, restartBegan)
            .filter((o) => o.doneAt > killedAt)
            .flatMap((o) => (records.get(o.spec.url)?.scans ?? []).filter((s) => isKilledClamd(s) || isKilledCore(s)).map((s) => `${s.backend} ${s.outcome} ${o.spec.infected ? 'eicar' : 'clean'}`)),
        ))}`,
        `scans per endpoint after the restarts began: ${JSON.stringify(perEndpoint(byPhase(restartBegan, Infinity)))}`,
        `metrics snapshots: ${JSON.stringify(snapshots)}`,
        `restart: clamd ready in ${clamdA.startTimesMs.at(-1)} ms, emulator in ${killedCore.startTimesMs.at(-1)} ms; ` +
          `from each one's restart: endpoint_up after clamd ${recovered.clamdUp} ms / core ${recovered.coreUp} ms; first scan answered on it after clamd ${recovered.clamd} ms / core ${recovered.core} ms`,
      ].join('\n'),
    );

    expect(outcomes.length).toBeGreaterThan(CLIENTS * 10);
    expect(infectedCount).toBeGreaterThan(0);
    expect(wrong.map((x) => `${x.o.spec.url}: ${x.why}`)).toEqual([]);
    for (const o of outcomes) expect(records.has(o.spec.url), `access record for ${o.spec.url}`).toBe(true);

    // ── after the kill: survivors only ──
    expect(down.length).toBeGreaterThan(CLIENTS);
    const onKilled = down.flatMap((o) => (records.get(o.spec.url)?.scans ?? []).filter((s) => isKilledClamd(s) || isKilledCore(s)).map((s) => `${o.spec.url} ${s.backend} ${s.endpoint} ${s.outcome}`));
    expect(onKilled).toEqual([]);
    for (const o of down) {
      const scans = records.get(o.spec.url)!.scans;
      expect(scans.map((s) => s.backend).sort(), o.spec.url).toEqual(['clamav', 'core']);
      expect(scans.every((s) => s.outcome === 'clean' || s.outcome === 'infected'), `${o.spec.url}: ${JSON.stringify(scans)}`).toBe(true);
    }
    const settled = snapshots['after settle']!;
    const beforeRestart = snapshots['before restart']!;
    expect(beforeRestart.up).toEqual([0, 0]);
    expect(beforeRestart.killedClamd).toBe(settled.killedClamd);
    expect(beforeRestart.killedCore).toBe(settled.killedCore);
    expect(beforeRestart.survivors).toBeGreaterThan(settled.survivors);
    expect(snapshots['before kill']!.up).toEqual([1, 1]);
    expect(snapshots['before kill']!.killedClamd).toBeGreaterThan(0);
    expect(snapshots['before kill']!.killedCore).toBeGreaterThan(0);

    // ── restarted endpoints take traffic again, within the budget ──
    expect(recovered.clamd, 'a scan on the restarted clamd').toBeLessThan(RECOVERY_BUDGET_MS);
    expect(recovered.core, 'a scan on the restarted emulator').toBeLessThan(RECOVERY_BUDGET_MS);

    // ── the log says so: one warning as each killed endpoint goes down, with why; news when it is back ──
    const healthLines = srv.logs().filter((l) => l.msg === 'backend endpoint down' || l.msg === 'backend endpoint up');
    console.log(`health lines:\n  ${healthLines.map((l) => `${l.level} ${l.msg} ${l.backend} ${l.endpoint}: ${l.reason}`).join('\n  ')}`);
    const linesFor = (label: { backend: string; endpoint: string }) => healthLines.filter((l) => l.backend === label.backend && l.endpoint === label.endpoint);
    for (const label of [killedClamdLabel, killedCoreLabel]) {
      const lines = linesFor(label);
      const downs = lines.filter((l) => l.msg === 'backend endpoint down');
      // Down once, and not once per failed scan: a flap while it restarts may add one more.
      expect(downs.length, `${label.endpoint} down lines`).toBeGreaterThanOrEqual(1);
      expect(downs.length, `${label.endpoint} down lines`).toBeLessThanOrEqual(3);
      expect(downs.every((l) => l.level === 40 && typeof l.reason === 'string' && l.reason !== '')).toBe(true);
      expect(lines.at(-1), `${label.endpoint}: the last health line says it is back`).toMatchObject({ msg: 'backend endpoint up', level: 30 });
    }
    expect(healthLines.filter((l) => l.endpoint === clamdB.socketPath || l.endpoint === cores[0]!.url || l.endpoint === cores[2]!.url)).toEqual([]);
  }, 120_000);
});

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
