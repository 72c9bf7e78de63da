/**
 * A/B benchmark: icap-bridge (A) against Debian's c-icap echo service (B).
 *
 *   npm run bench -- [--target-host 127.0.0.1] [--target-port 1344] [--duration 5] [--runs 3]
 *                    [--concurrency 1,16,64] [--with-1m] [--ceiling] [--no-target] [...]
 *
 * For each scenario and concurrency it runs A B A B A B (default 3 × 5 s each, 1 s warm-up),
 * in this process with bench/loadgen.ts, and prints the medians (req/s, p99) and A/B ratios
 * as a Markdown table. c-icap is started and stopped here through bench/c-icap/start.sh and
 * stop.sh. If A does not answer an OPTIONS probe, only B runs (and the report says so).
 * --ceiling also runs the load generator against bench/trivial-responder.ts (a child process)
 * to show how far above the measured rates the generator itself can go.
 * Results: bench/results/run-<timestamp>.json and .md (git-ignored).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { formatResult, probeOnce, runLoad, type LoadResult } from './loadgen.js';
import { busyPercent, cpuSnapshot, machineInfo, waitForQuiet, type MachineInfo } from './lib/machine.js';
import type { ScenarioName } from './lib/scenarios.js';
import { median, round } from './lib/stats.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

type Label = 'A' | 'B' | 'ceiling';

interface Case {
  /** Display key, e.g. "respmod-1m+preview1024". */
  key: string;
  scenario: ScenarioName;
  preview: number | undefined;
}

interface Endpoint {
  host: string;
  port: number;
  /** Service path per scenario. */
  service(scenario: ScenarioName): string;
}

interface RunRecord {
  label: Label;
  case: string;
  connections: number;
  iteration: number;
  quietBefore: { quiet: boolean; busyPercent: number; waitedMs: number } | null;
  /** Whole-machine busy % (all cores = 100) during the run: load generator + server + others. */
  machineBusyPercent: number;
  result: LoadResult;
}

interface SummaryRow {
  case: string;
  connections: number;
  a: Stats | null;
  b: Stats | null;
  ratioRps: number | null;
  ratioP99: number | null;
}

interface Stats {
  runs: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p99: number;
  p50: number;
  loadgenCpu: number;
  loadgenElu: number;
  loadgenUsPerRequest: number;
  errors: number;
  statuses: string;
}

const USAGE = `usage: npm run bench -- [options]
  --target-host H              icap-bridge host (default 127.0.0.1)
  --target-port P              icap-bridge port (default 1344)
  --target-reqmod-service S    service for REQMOD scenarios (default reqmod)
  --target-respmod-service S   service for RESPMOD scenarios (default respmod)
  --target-options-service S   service for the OPTIONS scenario (default respmod)
  --no-target                  skip A entirely
  --cicap-port P               port for the private c-icap (default 1345)
  --no-cicap                   skip B (c-icap) entirely
  --scenarios LIST             default options,reqmod-null,respmod-4k
  --with-1m                    add respmod-1m, without and with --preview 1024
  --concurrency LIST           default 1,16,64
  --runs N                     runs per target per cell (default 3)
  --duration S                 seconds per run (default 5)
  --warmup S                   warm-up seconds per run (default 1)
  --ceiling                    also measure the generator against bench/trivial-responder.ts
  --ceiling-concurrency LIST   default 16,64
  --ceiling-port P             default 1346
  --quiet-wait S               wait up to S s before each run for the machine to be quiet (default 10, 0 = off)
  --quiet-busy PCT             "quiet" = whole-machine busy below PCT % (default 15)
  --out DIR                    results directory (default bench/results)
  --report FILE.json           only re-render the Markdown report of a saved run`;

function parseList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

function parseIntList(s: string, name: string): number[] {
  return parseList(s).map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1 || n > 4096) throw new RangeError(`${name}: bad value ${x}`);
    return n;
  });
}

// ---------------------------------------------------------------------------------------------
// Processes we start (c-icap, trivial responder) — stopped by PID on every exit path.

interface CicapHandle {
  dir: string;
  pid: number;
  port: number;
}

let cicap: CicapHandle | null = null;
let responder: ChildProcess | null = null;

function startCicap(port: number): CicapHandle {
  const r = spawnSync('bash', [join(BENCH_DIR, 'c-icap', 'start.sh'), '--port', String(port)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const m = /dir=(\S+) pid=(\d+) port=(\d+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || m === null) {
    throw new Error(`c-icap start failed (exit ${r.status}): ${r.stderr}${r.stdout}`);
  }
  return { dir: m[1]!, pid: Number(m[2]), port: Number(m[3]) };
}

function stopCicap(): void {
  if (cicap === null) return;
  const h = cicap;
  cicap = null;
  spawnSync('bash', [join(BENCH_DIR, 'c-icap', 'stop.sh'), h.dir], { stdio: 'ignore', timeout: 30_000 });
  spawnSync('rm', ['-rf', '--', h.dir], { stdio: 'ignore', timeout: 30_000 });
}

async function startResponder(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(BENCH_DIR, 'trivial-responder.ts'), '--port', String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  responder = child;
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  for (let i = 0; i < 100 && !out.includes('listening'); i++) {
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  if (!out.includes('listening')) {
    stopResponder();
    throw new Error('trivial responder did not start within 10 s');
  }
  return child;
}

function stopResponder(): void {
  const child = responder;
  responder = null;
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
}

/** SIGTERM the responder by PID and wait (bounded, 5 s) for it to exit; SIGKILL after that. */
async function stopResponderAndWait(): Promise<void> {
  const child = responder;
  stopResponder();
  if (child?.pid === undefined) return;
  for (let i = 0; i < 50 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function cleanup(): void {
  stopResponder();
  stopCicap();
}

process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------

function summarize(records: RunRecord[], label: Label, key: string, c: number): Stats | null {
  const rs = records.filter((r) => r.label === label && r.case === key && r.connections === c).map((r) => r.result);
  if (rs.length === 0) return null;
  const statuses = new Map<string, number>();
  for (const r of rs) for (const [k, v] of Object.entries(r.statuses)) statuses.set(k, (statuses.get(k) ?? 0) + v);
  return {
    runs: rs.length,
    rps: round(median(rs.map((r) => r.rps)), 1),
    rpsMin: Math.min(...rs.map((r) => r.rps)),
    rpsMax: Math.max(...rs.map((r) => r.rps)),
    p99: round(median(rs.map((r) => r.latencyMs.p99)), 3),
    p50: round(median(rs.map((r) => r.latencyMs.p50)), 3),
    loadgenCpu: round(median(rs.map((r) => r.cpu.percentOfOneCore)), 1),
    loadgenElu: round(median(rs.map((r) => r.cpu.eventLoopUtilization)), 2),
    loadgenUsPerRequest: round(median(rs.map((r) => r.cpu.usPerRequest)), 2),
    errors: rs.reduce((a, r) => a + r.errors.total, 0),
    statuses: [...statuses].map(([k, v]) => `${k}×${v}`).join(' '),
  };
}

const fmt = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);

const range = (s: Stats | null): string => (s === null ? '—' : `${fmt(s.rpsMin, 0)}–${fmt(s.rpsMax, 0)}`);

function markdownAB(rows: SummaryRow[], aNote: string): string {
  const lines = [
    `A = icap-bridge (${aNote}); B = c-icap echo. Medians of the runs; p99 in ms; loadgen CPU = % of one core.`,
    '',
    '| scenario | conns | A req/s | A range | A p99 | B req/s | B range | B p99 | A/B req/s | A/B p99 | loadgen CPU (A / B) | errors (A / B) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.case} | ${r.connections} | ${fmt(r.a?.rps)} | ${range(r.a)} | ${fmt(r.a?.p99, 2)} | ` +
        `${fmt(r.b?.rps)} | ${range(r.b)} | ${fmt(r.b?.p99, 2)} | ` +
        `${fmt(r.ratioRps, 2)} | ${fmt(r.ratioP99, 2)} | ${fmt(r.a?.loadgenCpu, 0)} / ${fmt(r.b?.loadgenCpu, 0)} | ` +
        `${r.a?.errors ?? '—'} / ${r.b?.errors ?? '—'} |`,
    );
  }
  return lines.join('\n');
}

function markdownCeiling(records: RunRecord[], cases: Case[], conc: number[], rows: SummaryRow[]): string {
  const lines = [
    'Load generator against bench/trivial-responder.ts (fixed 204; 200 for OPTIONS). "Highest measured" is the best',
    'median of A or B for the scenario at any concurrency. The trivial responder is itself one Node thread, so',
    'the measured ceiling is usually the responder\'s limit; "capacity" = 1e6 ÷ generator CPU µs per request is',
    'what the generator could drive with a whole core to itself.',
    '',
    '| scenario | conns | trivial req/s | p99 ms | loadgen CPU % | loadgen ELU | loadgen µs/req | loadgen capacity req/s | highest measured req/s | headroom (measured) × | headroom (capacity) × |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const cs of cases) {
    const best = Math.max(
      0,
      ...rows.filter((r) => r.case === cs.key).flatMap((r) => [r.a?.rps ?? 0, r.b?.rps ?? 0]),
    );
    for (const c of conc) {
      const s = summarize(records, 'ceiling', cs.key, c);
      if (s === null) continue;
      const capacity = s.loadgenUsPerRequest > 0 ? 1e6 / s.loadgenUsPerRequest : Number.NaN;
      lines.push(
        `| ${cs.key} | ${c} | ${fmt(s.rps)} | ${fmt(s.p99, 2)} | ${fmt(s.loadgenCpu, 0)} | ${fmt(s.loadgenElu, 2)} | ` +
          `${fmt(s.loadgenUsPerRequest, 1)} | ${fmt(capacity, 0)} | ${best > 0 ? fmt(best) : '—'} | ` +
          `${best > 0 ? fmt(s.rps / best, 2) : '—'} | ${best > 0 ? fmt(capacity / best, 2) : '—'} |`,
      );
    }
  }
  return lines.join('\n');
}

interface RunFile {
  tool: 'icap-bridge-bench/run';
  date: string;
  wallSeconds: number;
  machine: MachineInfo;
  options: {
    durationS: number;
    warmupS: number;
    runs: number;
    concurrency: number[];
    cases: Case[];
    ceiling: boolean;
    ceilingConc: number[];
    quietWaitMs: number;
    quietBusy: number;
  };
  a: { host: string; port: number; services: Record<string, string>; reachable: boolean; note: string };
  b: { host: string; port: number; service: string } | null;
  summary: SummaryRow[];
  records: RunRecord[];
}

function buildRows(records: RunRecord[], cases: Case[], concurrency: number[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const cs of cases) {
    for (const c of concurrency) {
      const sa = summarize(records, 'A', cs.key, c);
      const sb = summarize(records, 'B', cs.key, c);
      rows.push({
        case: cs.key,
        connections: c,
        a: sa,
        b: sb,
        ratioRps: sa !== null && sb !== null && sb.rps > 0 ? round(sa.rps / sb.rps, 2) : null,
        ratioP99: sa !== null && sb !== null && sb.p99 > 0 ? round(sa.p99 / sb.p99, 2) : null,
      });
    }
  }
  return rows;
}

/** The Markdown report for a run (also used by --report to re-render a saved JSON file). */
function renderReport(f: RunFile): string {
  const o = f.options;
  const rows = buildRows(f.records, o.cases, o.concurrency);
  let md =
    `## icap-bridge vs c-icap — ${f.date}\n\n` +
    `${f.machine.nproc} CPUs (${f.machine.cpuModel}), ${f.machine.memoryMiB} MiB, node ${f.machine.node}, ` +
    `c-icap ${f.machine.cicap ?? '—'}; ${o.runs} runs × ${o.durationS} s (+${o.warmupS} s warm-up) per cell, ` +
    `A/B alternating.\n\n` +
    markdownAB(rows, f.a.note);
  if (o.ceiling) md += `\n\n${markdownCeiling(f.records, o.cases, o.ceilingConc, rows)}`;
  const busyRuns = f.records.filter((r) => r.quietBefore !== null && !r.quietBefore.quiet).length;
  if (busyRuns > 0) {
    md += `\n\nNote: ${busyRuns} of ${f.records.length} runs started while the machine was busy with other work (see JSON).`;
  }
  return md;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      'target-host': { type: 'string' },
      'target-port': { type: 'string' },
      'target-reqmod-service': { type: 'string' },
      'target-respmod-service': { type: 'string' },
      'target-options-service': { type: 'string' },
      'no-target': { type: 'boolean' },
      'cicap-port': { type: 'string' },
      'no-cicap': { type: 'boolean' },
      scenarios: { type: 'string' },
      'with-1m': { type: 'boolean' },
      concurrency: { type: 'string' },
      runs: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      ceiling: { type: 'boolean' },
      'ceiling-concurrency': { type: 'string' },
      'ceiling-port': { type: 'string' },
      'quiet-wait': { type: 'string' },
      'quiet-busy': { type: 'string' },
      out: { type: 'string' },
      report: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(USAGE);
    return 0;
  }
  if (values.report !== undefined) {
    console.log(renderReport(JSON.parse(readFileSync(values.report, 'utf8')) as RunFile));
    return 0;
  }

  const durationS = Number(values.duration ?? 5);
  const warmupS = Number(values.warmup ?? 1);
  const runs = Number(values.runs ?? 3);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new RangeError('--runs must be 1..20');
  const concurrency = parseIntList(values.concurrency ?? '1,16,64', '--concurrency');
  const ceilingConc = parseIntList(values['ceiling-concurrency'] ?? '16,64', '--ceiling-concurrency');
  const quietWaitMs = Number(values['quiet-wait'] ?? 10) * 1000;
  const quietBusy = Number(values['quiet-busy'] ?? 15);

  const cases: Case[] = parseList(values.scenarios ?? 'options,reqmod-null,respmod-4k').map((s) => {
    if (!['options', 'reqmod-null', 'respmod-4k', 'respmod-1m'].includes(s)) throw new RangeError(`unknown scenario ${s}`);
    return { key: s, scenario: s as ScenarioName, preview: undefined };
  });
  if (values['with-1m'] === true) {
    if (!cases.some((c) => c.key === 'respmod-1m')) cases.push({ key: 'respmod-1m', scenario: 'respmod-1m', preview: undefined });
    cases.push({ key: 'respmod-1m+preview1024', scenario: 'respmod-1m', preview: 1024 });
  }

  const machine: MachineInfo = machineInfo();
  const targetHost = values['target-host'] ?? '127.0.0.1';
  const targetPort = Number(values['target-port'] ?? 1344);
  const services = {
    reqmod: values['target-reqmod-service'] ?? 'reqmod',
    respmod: values['target-respmod-service'] ?? 'respmod',
    options: values['target-options-service'] ?? 'respmod',
  };
  const a: Endpoint = {
    host: targetHost,
    port: targetPort,
    service: (s) => (s === 'options' ? services.options : s === 'reqmod-null' ? services.reqmod : services.respmod),
  };

  console.log(`machine: ${machine.nproc} CPUs (${machine.cpuModel}), ${machine.memoryMiB} MiB, node ${machine.node}, c-icap ${machine.cicap ?? 'not installed'}`);

  // A: probe with OPTIONS; unreachable → B only.
  let aReachable = false;
  let aNote = 'not run (--no-target)';
  if (values['no-target'] !== true) {
    try {
      const p = await probeOnce({ host: a.host, port: a.port, service: services.options, scenario: 'options', timeoutMs: 2000 });
      aReachable = p.statuses.some((s) => s >= 200 && s < 300);
      aNote = aReachable
        ? `${a.host}:${a.port}, services ${services.reqmod}/${services.respmod}`
        : `not usable: OPTIONS answered ${p.statuses.join(',')}`;
    } catch (err) {
      aNote = `not reachable at ${a.host}:${a.port}: ${err instanceof Error ? err.message : String(err)}`;
    }
    console.log(aReachable ? `A (icap-bridge): ${aNote}` : `A (icap-bridge) ${aNote} — running B (c-icap) only`);
  }

  let b: Endpoint | null = null;
  if (values['no-cicap'] !== true) {
    cicap = startCicap(Number(values['cicap-port'] ?? 1345));
    console.log(`B (c-icap echo): 127.0.0.1:${cicap.port} pid ${cicap.pid} (${cicap.dir})`);
    b = { host: '127.0.0.1', port: cicap.port, service: () => 'echo' };
  }

  const targets: Array<[Label, Endpoint]> = [];
  if (aReachable) targets.push(['A', a]);
  if (b !== null) targets.push(['B', b]);

  const perRun = warmupS + durationS + (quietWaitMs > 0 ? 0.5 : 0) + 0.3;
  const planned =
    cases.length * concurrency.length * runs * targets.length +
    (values.ceiling === true ? cases.length * ceilingConc.length : 0);
  console.log(`plan: ${planned} runs × ~${perRun.toFixed(1)} s ≈ ${Math.ceil((planned * perRun) / 60)} min\n`);

  const records: RunRecord[] = [];
  const one = async (label: Label, ep: Endpoint, cs: Case, c: number, iteration: number): Promise<void> => {
    const quietBefore = quietWaitMs > 0 ? await waitForQuiet(quietBusy, quietWaitMs) : null;
    const s0 = cpuSnapshot();
    const result = await runLoad({
      host: ep.host,
      port: ep.port,
      service: ep.service(cs.scenario),
      scenario: cs.scenario,
      preview: cs.preview,
      connections: c,
      durationS,
      warmupS,
      requestTimeoutMs: 30_000,
      maxSeconds: warmupS + durationS + 60,
    });
    const machineBusy = busyPercent(s0, cpuSnapshot());
    records.push({ label, case: cs.key, connections: c, iteration, quietBefore, machineBusyPercent: machineBusy, result });
    const flag = quietBefore !== null && !quietBefore.quiet ? ` [machine busy ${quietBefore.busyPercent}% before run]` : '';
    console.log(
      `${label} ${cs.key} c=${c} #${iteration}: ${result.rps.toFixed(1)} req/s  p99 ${result.latencyMs.p99} ms  ` +
        `errors ${result.errors.total}  loadgen ${result.cpu.percentOfOneCore}% cpu${flag}`,
    );
    if (result.ok === 0) console.log(formatResult(result));
  };

  const started = Date.now();
  for (const cs of cases) {
    for (const c of concurrency) {
      for (let i = 1; i <= runs; i++) {
        for (const [label, ep] of targets) await one(label, ep, cs, c, i);
      }
    }
  }
  stopCicap();

  if (values.ceiling === true) {
    const port = Number(values['ceiling-port'] ?? 1346);
    await startResponder(port);
    const ep: Endpoint = { host: '127.0.0.1', port, service: () => 'trivial' };
    for (const cs of cases) for (const c of ceilingConc) await one('ceiling', ep, cs, c, 1);
    await stopResponderAndWait();
  }

  const file: RunFile = {
    tool: 'icap-bridge-bench/run',
    date: new Date().toISOString(),
    wallSeconds: Math.round((Date.now() - started) / 1000),
    machine,
    options: { durationS, warmupS, runs, concurrency, cases, ceiling: values.ceiling === true, ceilingConc, quietWaitMs, quietBusy },
    a: { host: a.host, port: a.port, services, reachable: aReachable, note: aNote },
    b: b === null ? null : { host: b.host, port: b.port, service: 'echo' },
    summary: buildRows(records, cases, concurrency),
    records,
  };
  const md = renderReport(file);
  console.log(`\n${md}\n`);

  const outDir = values.out ?? join(BENCH_DIR, 'results');
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `run-${file.date.replace(/[:.]/g, '-')}`);
  writeFileSync(`${base}.json`, JSON.stringify(file, null, 2));
  writeFileSync(`${base}.md`, `${md}\n`);
  console.log(`results: ${base}.json, ${base}.md`);
  return 0;
}

main().then(
  (code) => {
    cleanup();
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack ?? err.message : err);
    cleanup();
    process.exitCode = 1;
  },
);
