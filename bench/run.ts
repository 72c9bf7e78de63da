/**
 * The whole benchmark in one command (issue 6): icap-bridge against Debian's c-icap 0.5.10 on the
 * same machine, with direct clamd INSTREAM as the backend limit.
 *
 *   npm run bench -- [--runs 3] [--duration 5] [--concurrency 1,16,64] [--bridge-processes 1,2]
 *                    [--scenarios LIST] [--ceiling] [--generator native|node] [--loadgen-threads N] [--help]
 *
 * It builds dist/ (tsc), then starts, each in a private temp directory on loopback:
 *   - clamd (Debian clamav-daemon, installed with apt when missing) with a tiny offline DB;
 *   - one icap-bridge per --bridge-processes value (server.processes), from dist/, with
 *     bench/icap-bridge.bench.yaml: services respmod/reqmod (embedded engine) and clamd;
 *   - c-icap (bench/c-icap/start.sh, installed with apt when missing): echo, and virus_scan on
 *     the same clamd through clamd_mod (UNIX socket).
 * For each scenario × concurrency it runs every target once per round, --runs rounds, targets
 * alternating (A B C A B C …), and reports medians, p99, ratios and CPU per request. RESPMOD 1 MiB
 * rows go to the bridge's clamd service and c-icap's virus_scan, and add direct clamd INSTREAM
 * (bench/lib/instream-load.ts). The load comes from bench/native/icap-native.c (built with the
 * machine's C compiler; --generator node uses bench/loadgen.ts instead: BENCHMARKS.md, Session 16,
 * says why). --ceiling then measures the generator against a trivial responder (the native one,
 * or bench/trivial-responder.ts with --generator node). After the table, the large-body scenarios
 * run once per icap-bridge (memory-64x100m: bench/lib/memory-scenario.ts; options-during-1g: bench/lib/responsiveness-scenario.ts,
 * also on c-icap's echo for reference). Every process started here is stopped by its PID at the end, on
 * error and on SIGINT/SIGTERM. Results: bench/results/run-<date>.json and .md (git-ignored).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { formatResult, probeOnce, type LoadResult } from './loadgen.js';
import { ACCESS_LOG_FORMATS, BENCH_SERVICE, buildDist, isAccessLogFormat, startBridge, type BridgeProcess } from './lib/bridge-process.js';
import { ensureClamdInstalled, startBenchClamd, type BenchClamd } from './lib/clamd.js';
import { runInstreamLoad } from './lib/instream-load.js';
import { runLoadThreads } from './lib/load-threads.js';
import { buildNativeTools, isOfferedRate, runNativeLoad, startNativeResponder } from './lib/native-tools.js';
import { busyPercent, cpuSnapshot, machineInfo, waitForQuiet } from './lib/machine.js';
import { freePort } from './lib/ports.js';
import { childPids, totalCpuMs } from './lib/proc-cpu.js';
import { renderReport, type Case, type RunFile, type RunRecord, type TargetInfo } from './lib/report.js';
import { isScenarioName, type ScenarioName } from './lib/scenarios.js';
import { MEMORY_SCENARIO, runMemoryScenario } from './lib/memory-scenario.js';
import { RESPONSIVENESS_SCENARIO, runResponsivenessScenario } from './lib/responsiveness-scenario.js';
import type { LargeBodyRecord } from './lib/report.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** clamd's StreamMaxLength and the bridge's stream_max_bytes. */
const STREAM_MAX = 32 * 1024 * 1024;
/** The same, when the large-body scenarios go to the clamd service (--memory-service clamd): 1 GiB must fit. */
const LARGE_STREAM_MAX = 1536 * 1024 * 1024;
/** Bridge-only scenarios, after the A/B table: not in ALL_CASES (no ratio, one run per bridge). */
const LARGE_BODY_SCENARIOS = [MEMORY_SCENARIO, RESPONSIVENESS_SCENARIO] as const;

const USAGE = `usage: npm run bench -- [options]
  --scenarios LIST          default options,reqmod-null,respmod-4k,respmod-1m,respmod-1m+preview1024,
                            memory-64x100m,options-during-1g (the last two once per bridge, after the table);
                            NAME@RATE (e.g. reqmod-null@20000): NAME as an open loop at RATE requests/s,
                            the same load for every target (native generator; no ceiling, no direct clamd)
  --memory-service S        respmod | clamd: service of the two large-body scenarios (default respmod)
  --concurrency LIST        default 1,16,64
  --runs N                  rounds per cell (every target once per round; default 3)
  --duration S              measured seconds per run (default 5)
  --warmup S                warm-up seconds per run (default 1)
  --bridge-processes LIST   one icap-bridge per value of server.processes (default 1,2)
  --access-log-formats LIST squid | json, one icap-bridge per value and process count (default squid, like
                            c-icap's short text line; the first is bridge×N, another bridge×N json)
  --no-bridge | --no-cicap | --no-clamd-direct    leave a target out
  --builtin-workers N       icap-bridge backends.builtin.workers, per process (default 0 = one per CPU)
  --clamd-threads N         clamd MaxThreads (default 8)
  --clamd-transport T       unix | tcp, for the bridge and the direct client (default unix;
                            c-icap's clamd_mod always uses the UNIX socket)
  --clamd-transfer-mode M   instream | path: the bridge's clamd backend \`transfer\` (default path: the bench's
                            clamd is local, as c-icap's virus_scan, which hands clamd a descriptor, assumes)
  --generator G             native | node: bench/native/icap-native.c (default; needs a C compiler) or
                            bench/loadgen.ts (Node.js; its CPU per request holds the servers back here)
  --loadgen-threads N       generator threads, --generator node only (default 1)
  --ceiling                 also run the generator against a trivial responder (icap-native respond,
                            or bench/trivial-responder.ts with --generator node), --runs times, medians
  --ceiling-concurrency L   default 16,64
  --profile-bridge DIR      run the processes=1 bridge under node --cpu-prof, profile in DIR
  --quiet-wait S            before each run wait up to S s for the machine to be quiet (default 5, 0 = off)
  --quiet-busy PCT          "quiet" = whole machine below PCT % busy (default 15)
  --no-build                use dist/ as it is
  --out DIR                 results directory (default bench/results)
  --report FILE.json        only re-render the report of a saved run`;

const ALL_CASES: Case[] = [
  { key: 'options', scenario: 'options', preview: undefined, clamd: false },
  { key: 'reqmod-null', scenario: 'reqmod-null', preview: undefined, clamd: false },
  { key: 'respmod-4k', scenario: 'respmod-4k', preview: undefined, clamd: false },
  { key: 'respmod-1m', scenario: 'respmod-1m', preview: undefined, clamd: true },
  { key: 'respmod-1m+preview1024', scenario: 'respmod-1m', preview: 1024, clamd: true },
];

/**
 * A case from its --scenarios key: a known one, or `NAME@RATE`, the known case NAME as an open loop
 * at RATE requests per second.
 */
function caseFromKey(key: string): Case | undefined {
  const at = key.lastIndexOf('@');
  if (at < 0) return ALL_CASES.find((c) => c.key === key);
  const base = ALL_CASES.find((c) => c.key === key.slice(0, at));
  const rate = Number(key.slice(at + 1));
  if (base === undefined || !isOfferedRate(rate)) return undefined;
  return { ...base, key, offeredRate: rate };
}

/** The bridge's service for a case: the run's clamd, or the bench configuration's embedded-engine service. */
function bridgeService(cs: Case): string {
  return cs.clamd ? 'clamd' : BENCH_SERVICE[cs.scenario];
}

function parseIntList(s: string, name: string, min = 1): number[] {
  return s
    .split(',')
    .filter((x) => x.trim() !== '')
    .map((x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < min || n > 4096) throw new RangeError(`${name}: bad value ${x}`);
      return n;
    });
}

// ---------------------------------------------------------------------------------------------
// Processes started here; cleanup() stops each by PID on every exit path.

interface CicapHandle {
  dir: string;
  pid: number;
  port: number;
}

let clamd: BenchClamd | null = null;
const bridges: { label: string; proc: BridgeProcess }[] = [];
let cicap: CicapHandle | null = null;
let responder: ChildProcess | null = null;
const spoolLeft: Record<string, number> = {};

function startCicap(port: number, clamdSocket: string): CicapHandle {
  const r = spawnSync('bash', [join(BENCH_DIR, 'c-icap', 'start.sh'), '--port', String(port), '--virus-scan', '--clamd-socket', clamdSocket], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  const m = /dir=(\S+) pid=(\d+) port=(\d+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || m === null) throw new Error(`c-icap start failed (exit ${r.status}): ${r.stderr}${r.stdout}`);
  return { dir: m[1]!, pid: Number(m[2]), port: Number(m[3]) };
}

function stopCicap(): void {
  if (cicap === null) return;
  const h = cicap;
  cicap = null;
  spawnSync('bash', [join(BENCH_DIR, 'c-icap', 'stop.sh'), h.dir], { stdio: 'ignore', timeout: 30_000 });
  spawnSync('rm', ['-rf', '--', h.dir], { stdio: 'ignore', timeout: 30_000 });
}

async function startResponder(port: number, generator: Generator): Promise<ChildProcess> {
  if (generator === 'native') {
    responder = await startNativeResponder(port);
    return responder;
  }
  const child = spawn(process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'trivial-responder.ts'), '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  responder = child;
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 100 && !out.includes('listening') && child.exitCode === null; i++) await sleep(100);
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
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function stopAll(): Promise<void> {
  stopResponder();
  stopCicap();
  for (const b of bridges.splice(0)) spoolLeft[b.label] = await b.proc.stop();
  await clamd?.stop();
  clamd = null;
}

/** Synchronous last resort (process 'exit'): SIGKILL whatever is still running, by PID. */
function killAllNow(): void {
  stopResponder();
  stopCicap();
  for (const b of bridges) {
    for (const pid of new Set([b.proc.pid, ...b.proc.servingPids])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  if (clamd !== null) {
    try {
      process.kill(clamd.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void stopAll().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------

type Generator = 'native' | 'node';

interface Target {
  info: TargetInfo;
  /** Which cases it serves. */
  serves(cs: Case): boolean;
  /** Its processes, for CPU accounting (re-read per run: c-icap adds children). */
  pids(): number[];
  /** Empties its logs between runs (access logs grow by tens of MB per run). */
  truncateLogs(): void;
  measure(cs: Case, c: number, o: { durationS: number; warmupS: number; threads: number; generator: Generator }): Promise<LoadResult>;
}

function icapTarget(info: TargetInfo, port: number, service: (cs: Case) => string, pids: () => number[], truncateLogs: () => void, serves: (cs: Case) => boolean): Target {
  return {
    info,
    serves,
    pids,
    truncateLogs,
    measure: (cs, c, o) => {
      const load = {
        host: '127.0.0.1',
        port,
        service: service(cs),
        scenario: cs.scenario,
        preview: cs.preview,
        connections: c,
        durationS: o.durationS,
        warmupS: o.warmupS,
        requestTimeoutMs: 30_000,
        maxSeconds: o.warmupS + o.durationS + 60,
        onWindow: undefined,
        offeredRate: cs.offeredRate,
      };
      return o.generator === 'native' ? runNativeLoad(load) : runLoadThreads(load, o.threads);
    },
  };
}

async function expectAnswer(label: string, port: number, service: string, scenario: ScenarioName, preview?: number): Promise<void> {
  const p = await probeOnce({ host: '127.0.0.1', port, service, scenario, preview, timeoutMs: 10_000 });
  const final = p.statuses.at(-1) ?? 0;
  if (final < 200 || final >= 300) throw new Error(`${label} answered ${p.statuses.join(',')} to ${scenario} on /${service}:\n${p.raw.toString('latin1').slice(0, 1500)}`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      scenarios: { type: 'string' },
      'memory-service': { type: 'string' },
      concurrency: { type: 'string' },
      runs: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'bridge-processes': { type: 'string' },
      'no-bridge': { type: 'boolean' },
      'no-cicap': { type: 'boolean' },
      'no-clamd-direct': { type: 'boolean' },
      'clamd-threads': { type: 'string' },
      'builtin-workers': { type: 'string' },
      'clamd-transport': { type: 'string' },
      'clamd-transfer-mode': { type: 'string' },
      'access-log-formats': { type: 'string' },
      'loadgen-threads': { type: 'string' },
      generator: { type: 'string' },
      ceiling: { type: 'boolean' },
      'ceiling-concurrency': { type: 'string' },
      'profile-bridge': { type: 'string' },
      'quiet-wait': { type: 'string' },
      'quiet-busy': { type: 'string' },
      'no-build': { type: 'boolean' },
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
  const processesList = values['no-bridge'] === true ? [] : parseIntList(values['bridge-processes'] ?? '1,2', '--bridge-processes');
  const threads = parseIntList(values['loadgen-threads'] ?? '1', '--loadgen-threads')[0]!;
  const generator = values.generator ?? 'native';
  if (generator !== 'native' && generator !== 'node') throw new RangeError('--generator must be native or node');
  if (generator === 'native' && threads !== 1) throw new RangeError('--loadgen-threads is for --generator node');
  const clamdThreads = parseIntList(values['clamd-threads'] ?? '8', '--clamd-threads')[0]!;
  const builtinWorkers = parseIntList(values['builtin-workers'] ?? '0', '--builtin-workers', 0)[0]!;
  const transport = values['clamd-transport'] ?? 'unix';
  if (transport !== 'unix' && transport !== 'tcp') throw new RangeError('--clamd-transport must be unix or tcp');
  const clamdTransfer = values['clamd-transfer-mode'] ?? 'path';
  if (clamdTransfer !== 'instream' && clamdTransfer !== 'path') throw new RangeError('--clamd-transfer-mode must be instream or path');
  const accessLogFormats = (values['access-log-formats'] ?? 'squid').split(',').map((f) => {
    if (!isAccessLogFormat(f)) throw new RangeError(`--access-log-formats: ${f} is not one of ${ACCESS_LOG_FORMATS.join(', ')}`);
    return f;
  });
  const quietWaitMs = Number(values['quiet-wait'] ?? 5) * 1000;
  const quietBusy = Number(values['quiet-busy'] ?? 15);
  const wanted = (values.scenarios ?? [...ALL_CASES.map((c) => c.key), ...LARGE_BODY_SCENARIOS].join(',')).split(',').filter((s) => s !== '');
  const largeBody = LARGE_BODY_SCENARIOS.filter((n) => wanted.includes(n));
  const cases = wanted
    .filter((k) => !(LARGE_BODY_SCENARIOS as readonly string[]).includes(k))
    .map((k) => {
      const cs = caseFromKey(k);
      if (cs === undefined || !isScenarioName(cs.scenario)) {
        throw new RangeError(`unknown scenario ${k} (known: ${[...ALL_CASES.map((c) => c.key), ...LARGE_BODY_SCENARIOS].join(', ')}, and NAME@RATE for an open loop)`);
      }
      return cs;
    });
  if (generator === 'node' && cases.some((cs) => cs.offeredRate !== undefined)) throw new RangeError('NAME@RATE (an open loop) needs --generator native');
  const memoryService = values['memory-service'] ?? 'respmod';
  if (memoryService !== 'respmod' && memoryService !== 'clamd') throw new RangeError('--memory-service must be respmod or clamd');
  const largeOnClamd = largeBody.length > 0 && memoryService === 'clamd';
  const streamMax = largeOnClamd ? LARGE_STREAM_MAX : STREAM_MAX;
  const needClamd = cases.some((c) => c.clamd);
  const log = (line: string): void => console.log(line);

  const machine = machineInfo();
  log(`machine: ${machine.nproc} CPUs (${machine.cpuModel}), ${machine.memoryMiB} MiB, node ${machine.node}, c-icap ${machine.cicap ?? 'not installed yet'}`);
  if (values['no-build'] !== true && processesList.length > 0) {
    log('building dist/ (tsc)…');
    buildDist(log);
  }

  if (generator === 'native') log(`generator: ${buildNativeTools(log)}`);

  // --- start everything ----------------------------------------------------------------------
  const targets: Target[] = [];
  if (needClamd || largeOnClamd || values['no-cicap'] !== true) {
    ensureClamdInstalled(log);
    clamd = await startBenchClamd({ maxThreads: clamdThreads, maxQueue: 512, streamMaxLength: streamMax });
    clamdVersion = clamd.version;
    log(`clamd: ${clamd.version}, pid ${clamd.pid}, ${clamd.socketPath} and 127.0.0.1:${clamd.port}, MaxThreads ${clamdThreads}`);
  }
  const clamdEndpoint = clamd === null ? '' : transport === 'unix' ? clamd.socketPath : `127.0.0.1:${clamd.port}`;

  // One bridge per process count and access-line format: the first format's is `bridge×N`, another's adds its name.
  const bridgeSpecs = processesList.flatMap((processes) =>
    accessLogFormats.map((accessLogFormat, i) => ({ processes, accessLogFormat, label: `bridge×${processes}${i === 0 ? '' : ` ${accessLogFormat}`}` })),
  );
  for (const { processes, accessLogFormat, label } of bridgeSpecs) {
    const port = await freePort();
    const profileDir = label === 'bridge×1' ? values['profile-bridge'] : undefined;
    if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
    const proc = await startBridge({
      port,
      processes,
      clamdEndpoint: clamdEndpoint || '/nonexistent/clamd.sock',
      streamMaxBytes: streamMax,
      builtinWorkers,
      clamdTransfer,
      accessLogFormat,
      nodeArgs: profileDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [],
    });
    bridges.push({ label, proc });
    log(`${label}: icap-bridge pid ${proc.pid} (serving pids ${proc.servingPids.join(', ')}) on 127.0.0.1:${port}, ${proc.dir}`);
    const pids = [...new Set([proc.pid, ...proc.servingPids])];
    targets.push(
      icapTarget(
        { label, kind: 'bridge', description: `icap-bridge from dist/, server.processes ${processes}; services respmod/reqmod (embedded engine, ${builtinWorkers || 'CPUs ÷ processes'} scan threads per process), clamd (${clamdTransfer === 'path' ? 'SCAN by path' : 'INSTREAM'} over ${transport}); access lines ${accessLogFormat}` },
        port,
        bridgeService,
        () => pids,
        () => proc.truncateLog(),
        () => true,
      ),
    );
  }

  if (values['no-cicap'] !== true) {
    cicap = startCicap(await freePort(), clamd!.socketPath);
    const h = cicap;
    log(`c-icap: pid ${h.pid} on 127.0.0.1:${h.port} (${h.dir}): echo, avscan = virus_scan via clamd_mod on ${clamd!.socketPath}`);
    targets.push(
      icapTarget(
        { label: 'c-icap', kind: 'c-icap', description: `Debian c-icap (${machine.cicap ?? '?'}): echo service; RESPMOD 1 MiB on virus_scan (avscan, allow204, mode=simple) via clamd_mod, UNIX socket` },
        h.port,
        (cs) => (cs.clamd ? 'avscan' : 'echo'),
        () => [h.pid, ...childPids(h.pid)],
        () => {
          for (const f of ['access.log', 'server.log']) {
            try {
              truncateSync(join(h.dir, f), 0);
            } catch {
              // not written yet
            }
          }
        },
        () => true,
      ),
    );
  }

  if (clamd !== null && needClamd && values['no-clamd-direct'] !== true) {
    const c = clamd;
    targets.push({
      info: { label: 'clamd', kind: 'clamd', description: `direct clamd INSTREAM (${transport}), 1 MiB in 64 KiB chunks, one connection per scan: the backend limit` },
      // Direct INSTREAM has no open loop (bench/lib/instream-load.ts): the limit is the closed loop's.
      serves: (cs) => cs.clamd && cs.preview === undefined && cs.offeredRate === undefined,
      pids: () => [c.pid],
      truncateLogs: () => {},
      measure: (cs, conns, o) =>
        runInstreamLoad({ endpoint: clamdEndpoint, connections: conns, bodyBytes: 1024 * 1024, durationS: o.durationS, warmupS: o.warmupS, requestTimeoutMs: 30_000 }),
    });
  }

  // Every ICAP target must answer each scenario with a 2xx before anything is measured.
  for (const t of targets) {
    if (t.info.kind === 'clamd') continue;
    const port = t.info.kind === 'c-icap' ? cicap!.port : bridges.find((b) => b.label === t.info.label)!.proc.port;
    for (const cs of cases) {
      if (!t.serves(cs)) continue;
      const service = t.info.kind === 'c-icap' ? (cs.clamd ? 'avscan' : 'echo') : bridgeService(cs);
      await expectAnswer(t.info.label, port, service, cs.scenario, cs.preview);
    }
  }

  // --- measure --------------------------------------------------------------------------------
  const records: RunRecord[] = [];
  const one = async (t: Target, cs: Case, c: number, iteration: number): Promise<void> => {
    const quietBefore = quietWaitMs > 0 ? await waitForQuiet(quietBusy, quietWaitMs) : null;
    const pids = t.pids();
    const cpuBefore = totalCpuMs(pids);
    const clamdPids = cs.clamd && clamd !== null ? [clamd.pid] : [];
    const clamdBefore = totalCpuMs(clamdPids);
    const s0 = cpuSnapshot();
    const result = await t.measure(cs, c, { durationS, warmupS, threads, generator });
    // Server CPU over warm-up + window, scaled to the window (warm-up runs at the same rate).
    const scale = durationS / (durationS + warmupS);
    const serverCpuMs = pids.length ? (totalCpuMs(pids) - cpuBefore) * scale : null;
    const clamdCpuMs = clamdPids.length ? (totalCpuMs(clamdPids) - clamdBefore) * scale : null;
    const machineBusy = busyPercent(s0, cpuSnapshot());
    t.truncateLogs();
    records.push({ label: t.info.label, case: cs.key, connections: c, iteration, quietBefore, machineBusyPercent: machineBusy, serverCpuMs, clamdCpuMs, result });
    const flag = quietBefore !== null && !quietBefore.quiet ? ` [machine ${quietBefore.busyPercent}% busy before]` : '';
    log(
      `${t.info.label.padEnd(9)} ${cs.key} c=${c} #${iteration}: ${result.rps.toFixed(1)} req/s  p99 ${result.latencyMs.p99} ms  errors ${result.errors.total}  ` +
        `loadgen ${result.cpu.percentOfOneCore}%${serverCpuMs !== null ? `  server ${Math.round((serverCpuMs / (durationS * 1000)) * 100)}%` : ''}${flag}`,
    );
    if (result.ok === 0) log(formatResult(result));
  };

  const planned = cases.reduce((n, cs) => n + targets.filter((t) => t.serves(cs)).length, 0) * concurrency.length * runs;
  const perRun = warmupS + durationS + (quietWaitMs > 0 ? 0.7 : 0.1);
  log(`\nplan: ${planned} runs × ~${perRun.toFixed(1)} s ≈ ${Math.ceil((planned * perRun) / 60)} min\n`);
  const started = Date.now();
  for (const cs of cases) {
    for (const c of concurrency) {
      for (let i = 1; i <= runs; i++) {
        for (const t of targets) if (t.serves(cs)) await one(t, cs, c, i);
      }
    }
  }

  const trivialInfo: TargetInfo = {
    label: 'trivial',
    kind: 'trivial',
    description: `${generator === 'native' ? 'icap-native respond (bench/native/icap-native.c)' : 'bench/trivial-responder.ts'} (fixed answers; the generator ceiling)`,
  };
  if (values.ceiling === true) {
    const port = await freePort();
    const child = await startResponder(port, generator);
    const t = icapTarget(
      trivialInfo,
      port,
      () => 'trivial',
      () => [child.pid!],
      () => {},
      () => true,
    );
    // --runs rounds, medians, as for the servers: a single 5 s window here swung 20-30 % with the host (Session 25).
    // The ceiling is the generator's closed-loop limit: an open loop's rate is set, not measured.
    const closed = cases.filter((cs) => cs.offeredRate === undefined);
    for (let i = 1; i <= runs; i++) for (const cs of closed) for (const c of ceilingConc) await one(t, cs, c, i);
    stopResponder();
  }
  const largeBodyRecords = await runLargeBody(largeBody, memoryService, log, quietWaitMs > 0 ? () => waitForQuiet(quietBusy, quietWaitMs) : null);
  const targetInfos = targets.map((t) => t.info);
  if (values.ceiling === true) targetInfos.push(trivialInfo);
  await stopAll();

  const file: RunFile = {
    tool: 'icap-bridge-bench/run',
    date: new Date().toISOString(),
    wallSeconds: Math.round((Date.now() - started) / 1000),
    machine: { ...machine, cicap: machineInfo().cicap, clamd: clamdVersion },
    options: { durationS, warmupS, runs, concurrency, cases, ceilingConc, loadgenThreads: threads, generator, quietWaitMs, quietBusy },
    targets: targetInfos,
    spoolLeft,
    records,
    largeBody: largeBodyRecords,
  };
  const md = renderReport(file);
  console.log(`\n${md}\n`);
  const outDir = values.out ?? join(BENCH_DIR, 'results');
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `run-${file.date.replace(/[:.]/g, '-')}`);
  writeFileSync(`${base}.json`, JSON.stringify(file, null, 2));
  writeFileSync(`${base}.md`, `${md}\n`);
  console.log(`results: ${base}.json, ${base}.md`);
  return Object.values(spoolLeft).some((n) => n > 0) || largeBodyRecords.some((r) => !r.result.ok) ? 1 : 0;
}

/**
 * The large-body scenarios, once per icap-bridge instance (memory first, then responsiveness),
 * then the responsiveness one on c-icap's echo for reference. A failed scenario is recorded and
 * reported (and makes the exit code 1); it does not stop the others.
 */
async function runLargeBody(
  names: readonly string[],
  service: 'respmod' | 'clamd',
  log: (line: string) => void,
  waitQuiet: (() => Promise<unknown>) | null,
): Promise<LargeBodyRecord[]> {
  const out: LargeBodyRecord[] = [];
  const report = (rec: LargeBodyRecord): void => {
    out.push(rec);
    const r = rec.result;
    const figures =
      r.scenario === MEMORY_SCENARIO
        ? `peak RSS sum ${(r.memory.peakSumBytes / 2 ** 20).toFixed(1)} MiB (VmHWM sum ${(r.memory.hwmSumBytes / 2 ** 20).toFixed(1)}), ${JSON.stringify(r.statuses)}, ${r.wallSeconds} s, ${r.mibPerSecond} MiB/s, spool files left ${r.spoolFilesLeft}`
        : `OPTIONS ×${r.probes} p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} max ${r.latencyMs.max} ms, big ${r.bigStatus}, ${r.wallSeconds} s, ${r.mibPerSecond} MiB/s`;
    log(`${rec.label.padEnd(9)} ${r.scenario}: ${figures} → ${!r.ok ? 'FAIL' : r.pass ? 'pass' : 'over budget'}`);
    const why = r.scenario === MEMORY_SCENARIO ? r.errors : [r.bigError, r.firstProbeError].filter((x) => x !== null);
    if (why.length > 0) log(`          ${why.join('; ')}`);
  };
  if (names.length > 0) log(`\nlarge-body scenarios (${names.join(', ')}); icap-bridge service ${service}`);
  for (const b of bridges) {
    if (names.includes(MEMORY_SCENARIO)) {
      await waitQuiet?.();
      const result = await runMemoryScenario({ host: '127.0.0.1', port: b.proc.port, service, rootPid: b.proc.pid, spoolDir: b.proc.spoolDir });
      report({ label: b.label, result });
      b.proc.truncateLog();
    }
    if (names.includes(RESPONSIVENESS_SCENARIO)) {
      await waitQuiet?.();
      const result = await runResponsivenessScenario({ host: '127.0.0.1', port: b.proc.port, service, expectStatus: 204, spoolDir: b.proc.spoolDir });
      report({ label: b.label, result });
      b.proc.truncateLog();
    }
  }
  if (cicap !== null && names.includes(RESPONSIVENESS_SCENARIO)) {
    await waitQuiet?.();
    // c-icap's echo answers a RESPMOD with a body by echoing it (200), Allow: 204 or not.
    const result = await runResponsivenessScenario({ host: '127.0.0.1', port: cicap.port, service: 'echo', expectStatus: 200, spoolDir: null });
    report({ label: 'c-icap', result });
  }
  return out;
}

let clamdVersion: string | null = null;

main().then(
  async (code) => {
    await stopAll();
    process.exitCode = code;
  },
  async (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    await stopAll();
    process.exitCode = 1;
  },
);
