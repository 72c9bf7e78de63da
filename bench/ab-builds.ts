/**
 * Two builds of icap-bridge under the same load, alternating A B A B: a change against its base,
 * where bench/run.ts compares the bridge against c-icap. On this noisy 2-core host a run's rate moves
 * 10–30 % from one minute to the next, so only pairs run back to back say anything (BENCHMARKS.md,
 * Sessions 11 and 12, which did this with throwaway scripts).
 *
 * Each run starts that tree's dist/src/cli.js with the bench configuration (bench/lib/bridge-process.ts:
 * private temp directory, loopback port, access log on, one process), runs the generator for
 * --warmup + --duration seconds, and stops the server by its PID. Server CPU is read from /proc over
 * the measurement window only.
 *
 *   git worktree add -f /tmp/base <rev> --detach && ln -s "$PWD/node_modules" /tmp/base/ && (cd /tmp/base && npx tsc -p tsconfig.json)
 *   npm run build
 *   node --import tsx bench/ab-builds.ts --a /tmp/base --b . --scenario reqmod-null --connections 16 --pairs 5
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad, type LoadResult } from './loadgen.js';
import { BENCH_SERVICE, startTreeBridge } from './lib/bridge-process.js';
import { freePort } from './lib/ports.js';
import { totalCpuMs } from './lib/proc-cpu.js';
import { isScenarioName, type ScenarioName } from './lib/scenarios.js';
import { median } from './lib/stats.js';

const USAGE =
  'usage: node --import tsx bench/ab-builds.ts --a DIR --b DIR [--scenario reqmod-null] [--connections 16] [--pairs 5] [--duration 5] [--warmup 1]\n' +
  '  DIR: a checkout whose dist/ is built (npm run build); scenarios: options | reqmod-null | respmod-4k\n';

interface Run {
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU per answered request over the window, µs. */
  cpuUs: number;
  errors: number;
}

async function measure(root: string, scenario: ScenarioName, connections: number, durationS: number, warmupS: number): Promise<Run> {
  const bridge = await startTreeBridge(root, await freePort());
  try {
    let cpuAtStart = 0;
    let cpuAtEnd = 0;
    const r: LoadResult = await runLoad({
      port: bridge.port,
      service: BENCH_SERVICE[scenario],
      scenario,
      connections,
      durationS,
      warmupS,
      maxSeconds: warmupS + durationS + 60,
      onWindow: (edge) => {
        if (edge === 'start') cpuAtStart = totalCpuMs(bridge.servingPids);
        else cpuAtEnd = totalCpuMs(bridge.servingPids);
      },
    });
    return { rps: r.rps, p50: r.latencyMs.p50, p99: r.latencyMs.p99, cpuUs: ((cpuAtEnd - cpuAtStart) * 1000) / Math.max(1, r.ok), errors: r.errors.total };
  } finally {
    await bridge.stop();
  }
}

const show = (label: string, r: Run): string =>
  `${label} ${Math.round(r.rps).toString().padStart(6)} req/s  p50 ${r.p50.toFixed(3)}  p99 ${r.p99.toFixed(3)} ms  server ${r.cpuUs.toFixed(1)} µs/req${r.errors > 0 ? `  errors ${r.errors}` : ''}`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      a: { type: 'string' },
      b: { type: 'string' },
      scenario: { type: 'string', default: 'reqmod-null' },
      connections: { type: 'string', default: '16' },
      pairs: { type: 'string', default: '5' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
    },
    strict: true,
  });
  const roots = [values.a, values.b].map((d) => (d === undefined ? undefined : resolve(d)));
  const scenario = values.scenario!;
  const [connections, pairs, durationS, warmupS] = [values.connections, values.pairs, values.duration, values.warmup].map(Number) as [number, number, number, number];
  if (roots.some((d) => d === undefined || !existsSync(join(d, 'dist', 'src', 'cli.js'))) || !isScenarioName(scenario) || scenario === 'respmod-1m') {
    process.stderr.write(USAGE);
    return 2;
  }
  if (![connections, pairs, durationS].every((n) => Number.isInteger(n) && n > 0) || !(warmupS >= 0) || pairs > 50 || durationS > 60) {
    process.stderr.write(`${USAGE}(connections, pairs ≤ 50 and duration ≤ 60 s are positive whole numbers)\n`);
    return 2;
  }
  const [a, b] = roots as [string, string];
  process.stdout.write(`A ${a}\nB ${b}\n${scenario}, ${connections} connections, ${pairs} pairs of ${warmupS} + ${durationS} s\n`);
  const results: { a: Run; b: Run }[] = [];
  for (let i = 0; i < pairs; i++) {
    const ra = await measure(a, scenario, connections, durationS, warmupS);
    const rb = await measure(b, scenario, connections, durationS, warmupS);
    results.push({ a: ra, b: rb });
    process.stdout.write(`pair ${i + 1}  ${show('A', ra)}\n        ${show('B', rb)}\n`);
  }
  const med = (pick: (r: Run) => number, side: 'a' | 'b'): number => median(results.map((p) => pick(p[side])));
  const ahead = results.filter((p) => p.b.rps > p.a.rps).length;
  const lowerP99 = results.filter((p) => p.b.p99 < p.a.p99).length;
  process.stdout.write(
    `medians  A ${Math.round(med((r) => r.rps, 'a'))} → B ${Math.round(med((r) => r.rps, 'b'))} req/s, ` +
      `p99 ${med((r) => r.p99, 'a').toFixed(3)} → ${med((r) => r.p99, 'b').toFixed(3)} ms, ` +
      `server ${med((r) => r.cpuUs, 'a').toFixed(1)} → ${med((r) => r.cpuUs, 'b').toFixed(1)} µs/req\n` +
      `B's rate higher in ${ahead} of ${pairs} pairs, its p99 lower in ${lowerP99}\n`,
  );
  return 0;
}

process.exitCode = await main();
