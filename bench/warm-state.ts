/**
 * Does what a server has served before change what one scenario costs? Two processes of the same
 * build: "alone" has served only the measured scenario, "mixed" first served the others (--mix, each
 * for --mix-seconds). Then they take the measured scenario in turns, A B B A …, and the tool prints
 * each one's median rate, p99 and CPU per request, and in how many pairs "mixed" was faster.
 *
 * Why (Session 27): V8 compiles the code both paths share for the objects it has seen. A server that
 * has answered bodies, previews and OPTIONS runs REQMOD null-body through code compiled for all of
 * them, where bench/run.ts's scenario-by-scenario runs and bench/ab-builds.ts's fresh processes see
 * one path at a time. Users' servers see the mix.
 *
 *   npm run build
 *   node --import tsx bench/warm-state.ts [--scenario reqmod-null] [--mix options,respmod-4k,respmod-1m,respmod-1m+preview]
 *       [--connections 16] [--pairs 16] [--duration 2] [--mix-seconds 2]
 *
 * The native generator (bench/native/icap-native.c) drives both; `respmod-1m+preview` is respmod-1m
 * with a 1024-byte preview. Server CPU is read from /proc over warm-up and window, scaled to the
 * window, as bench/run.ts does. Both processes are stopped by PID at the end, on error too.
 */
import { parseArgs } from 'node:util';
import { BENCH_SERVICE, ROOT, startTreeBridge, type BridgeProcess } from './lib/bridge-process.js';
import { runNativeLoad } from './lib/native-tools.js';
import { freePort } from './lib/ports.js';
import { totalCpuMs } from './lib/proc-cpu.js';
import { isScenarioName, type ScenarioName } from './lib/scenarios.js';
import { median } from './lib/stats.js';

const USAGE =
  'usage: node --import tsx bench/warm-state.ts [--scenario reqmod-null] [--mix options,respmod-4k,respmod-1m,respmod-1m+preview]\n' +
  '         [--connections 16] [--pairs 16] [--duration 2] [--mix-seconds 2]\n' +
  '  --scenario: options | reqmod-null | respmod-4k; --mix: scenarios, respmod-1m+preview for the preview variant\n';
const PREVIEW_SUFFIX = '+preview';
const WARMUP_S = 0.5;

interface MixStep {
  scenario: ScenarioName;
  preview: number | undefined;
}

interface Run {
  rps: number;
  p99: number;
  cpuUs: number;
}

function parseMix(list: string): MixStep[] | null {
  const steps: MixStep[] = [];
  for (const item of list.split(',').filter((s) => s !== '')) {
    const name = item.endsWith(PREVIEW_SUFFIX) ? item.slice(0, -PREVIEW_SUFFIX.length) : item;
    if (!isScenarioName(name)) return null;
    steps.push({ scenario: name, preview: name === item ? undefined : 1024 });
  }
  return steps.length > 0 ? steps : null;
}

/** This tree's build, one process, the bench configuration with the Squid access line (bench/run.ts's default). */
async function startServer(): Promise<BridgeProcess> {
  return startTreeBridge(ROOT, await freePort(), 'squid');
}

async function load(server: BridgeProcess, scenario: ScenarioName, connections: number, durationS: number, preview?: number): Promise<Run> {
  const cpuBefore = totalCpuMs(server.servingPids);
  const r = await runNativeLoad({
    host: '127.0.0.1',
    port: server.port,
    service: BENCH_SERVICE[scenario],
    scenario,
    connections,
    durationS,
    warmupS: WARMUP_S,
    preview,
    requestTimeoutMs: 30_000,
    maxSeconds: durationS + WARMUP_S + 60,
  });
  if (r.errors.total > 0 || r.ok === 0) throw new Error(`${scenario}: ${r.errors.total} errors, ${r.ok} answers`);
  const windowCpuMs = (totalCpuMs(server.servingPids) - cpuBefore) * (durationS / (durationS + WARMUP_S));
  return { rps: r.rps, p99: r.latencyMs.p99, cpuUs: (windowCpuMs * 1000) / r.ok };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      scenario: { type: 'string', default: 'reqmod-null' },
      mix: { type: 'string', default: 'options,respmod-4k,respmod-1m,respmod-1m+preview' },
      connections: { type: 'string', default: '16' },
      pairs: { type: 'string', default: '16' },
      duration: { type: 'string', default: '2' },
      'mix-seconds': { type: 'string', default: '2' },
    },
    strict: true,
  });
  const scenario = values.scenario!;
  const mix = parseMix(values.mix!);
  const [connections, pairs, durationS, mixS] = [values.connections, values.pairs, values.duration, values['mix-seconds']].map(Number) as [number, number, number, number];
  if (!isScenarioName(scenario) || scenario === 'respmod-1m' || mix === null) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (![connections, pairs, durationS, mixS].every((n) => Number.isInteger(n) && n > 0) || pairs > 50 || durationS > 60 || mixS > 60) {
    process.stderr.write(`${USAGE}(connections, pairs ≤ 50, duration and mix-seconds ≤ 60 are positive whole numbers)\n`);
    return 2;
  }
  const servers: BridgeProcess[] = [];
  try {
    const alone = await startServer();
    servers.push(alone);
    const mixed = await startServer();
    servers.push(mixed);
    process.stdout.write(`${scenario}, ${connections} connections, ${pairs} pairs of ${WARMUP_S} + ${durationS} s; "mixed" served ${values.mix} first\n`);
    for (const step of mix) await load(mixed, step.scenario, connections, mixS, step.preview);
    // Both then serve the measured scenario once before the pairs: the same JIT warm-up for each.
    for (const server of [alone, mixed]) await load(server, scenario, connections, 3);
    const runs = { alone: [] as Run[], mixed: [] as Run[] };
    for (let i = 0; i < pairs; i++) {
      // A B B A …: neither always goes first.
      const order = i % 2 === 0 ? (['alone', 'mixed'] as const) : (['mixed', 'alone'] as const);
      for (const side of order) runs[side].push(await load(side === 'alone' ? alone : mixed, scenario, connections, durationS));
      const show = (r: Run): string => `${Math.round(r.rps)} req/s, p99 ${r.p99.toFixed(3)} ms, ${r.cpuUs.toFixed(1)} µs/req`;
      process.stdout.write(`pair ${i + 1}  alone ${show(runs.alone[i]!)}  mixed ${show(runs.mixed[i]!)}\n`);
    }
    for (const side of ['alone', 'mixed'] as const) {
      const rs = runs[side];
      process.stdout.write(
        `${side.padEnd(5)}  median ${Math.round(median(rs.map((r) => r.rps)))} req/s, p99 ${median(rs.map((r) => r.p99)).toFixed(3)} ms, ${median(rs.map((r) => r.cpuUs)).toFixed(1)} µs/req\n`,
      );
    }
    const faster = runs.mixed.filter((r, i) => r.rps > runs.alone[i]!.rps).length;
    process.stdout.write(`"mixed" faster in ${faster} of ${pairs} pairs\n`);
    return 0;
  } finally {
    for (const server of servers) await server.stop();
  }
}

process.exitCode = await main();
