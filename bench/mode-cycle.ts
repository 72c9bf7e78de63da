/**
 * Several variants of one server in ONE process, switched between short rounds: what a piece of
 * work costs when separate runs cannot say it. On this host the same build moves 10–30 % from one
 * minute to the next, faster than bench/ab-builds.ts's pairs of separate processes can follow;
 * rounds of 1.5 s in one process, variants in turn, put every variant in the same minutes
 * (BENCHMARKS.md, Sessions 18–20, which did this with throwaway scripts).
 *
 * The variants live in a patched copy of dist/ that reads the current variant from a file named by
 * the environment variable BENCH_MODE_FILE (this tool writes it before each round and waits
 * --settle-ms for the server to notice). For example, a module the patched files import:
 *
 *   // <copy>/dist/mode.js
 *   import { readFileSync } from 'node:fs';
 *   export let MODE = 'full';
 *   const read = () => { try { MODE = readFileSync(process.env.BENCH_MODE_FILE, 'utf8').trim(); } catch {} };
 *   read(); setInterval(read, 100).unref();
 *
 * and in, say, dist/src/observability/access-log.js: `if (MODE === 'none') return;`.
 *
 *   cp -r dist /tmp/v/ && ln -s "$PWD/node_modules" "$PWD/config" /tmp/v/ && cp package.json /tmp/v/   # then patch /tmp/v/dist
 *   node --import tsx bench/mode-cycle.ts --root /tmp/v --modes full,none --scenario reqmod-null --connections 16 --rounds 12
 *
 * Each round runs the native generator (bench/native) for --round-seconds with no warm-up; server
 * CPU per request comes from /proc over the round. Per variant it prints the median of its rate
 * divided by the first variant's rate in the same round, in how many rounds it was higher, and the
 * medians of rate, p99 and CPU per request. The server is stopped by its PID at the end.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BENCH_SERVICE, startTreeBridge } from './lib/bridge-process.js';
import { runNativeLoad } from './lib/native-tools.js';
import { freePort } from './lib/ports.js';
import { totalCpuMs } from './lib/proc-cpu.js';
import { isScenarioName } from './lib/scenarios.js';
import { median } from './lib/stats.js';

const USAGE =
  'usage: node --import tsx bench/mode-cycle.ts --root DIR --modes A,B[,...] [--scenario reqmod-null] [--connections 16]\n' +
  '         [--rounds 12] [--round-seconds 1.5] [--settle-ms 250] [--warmup 3]\n' +
  '  DIR: a tree whose dist/ reads $BENCH_MODE_FILE (see the comment at the top); scenarios: options | reqmod-null | respmod-4k\n';

interface Round {
  rps: number;
  p99: number;
  /** Server CPU per answered request over the round, µs. */
  cpuUs: number;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      root: { type: 'string' },
      modes: { type: 'string' },
      scenario: { type: 'string', default: 'reqmod-null' },
      connections: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '12' },
      'round-seconds': { type: 'string', default: '1.5' },
      'settle-ms': { type: 'string', default: '250' },
      warmup: { type: 'string', default: '3' },
    },
    strict: true,
  });
  const root = values.root === undefined ? undefined : resolve(values.root);
  const modes = (values.modes ?? '').split(',').filter((m) => m !== '');
  const scenario = values.scenario!;
  const [connections, rounds, roundS, settleMs, warmupS] = [values.connections, values.rounds, values['round-seconds'], values['settle-ms'], values.warmup].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  if (root === undefined || !existsSync(join(root, 'dist', 'src', 'cli.js')) || modes.length < 2 || !isScenarioName(scenario) || scenario === 'respmod-1m') {
    process.stderr.write(USAGE);
    return 2;
  }
  if (!(Number.isInteger(connections) && connections > 0 && Number.isInteger(rounds) && rounds > 0 && rounds <= 100 && roundS > 0 && roundS <= 30 && settleMs >= 0 && warmupS >= 0)) {
    process.stderr.write(`${USAGE}(rounds 1..100, round-seconds up to 30)\n`);
    return 2;
  }

  const modeDir = mkdtempSync(join(tmpdir(), 'icap-bridge-mode-'));
  const modeFile = join(modeDir, 'mode');
  const byMode = new Map<string, Round[]>(modes.map((m) => [m, []]));
  try {
    writeFileSync(modeFile, modes[0]!);
    process.env.BENCH_MODE_FILE = modeFile; // inherited by the server process
    const bridge = await startTreeBridge(root, await freePort());
    const load = (durationS: number): ReturnType<typeof runNativeLoad> =>
      runNativeLoad({
        host: '127.0.0.1',
        port: bridge.port,
        service: BENCH_SERVICE[scenario],
        scenario,
        connections,
        durationS,
        warmupS: 0,
        requestTimeoutMs: 10_000,
        maxSeconds: durationS + 30,
      });
    try {
      process.stdout.write(`${root}: ${modes.join(' / ')}, ${scenario}, ${connections} connections, ${rounds} rounds of ${roundS} s\n`);
      if (warmupS > 0) await load(warmupS);
      for (let round = 1; round <= rounds; round++) {
        const line: string[] = [];
        for (const mode of modes) {
          writeFileSync(modeFile, mode);
          await sleep(settleMs);
          const cpuBefore = totalCpuMs(bridge.servingPids);
          const r = await load(roundS);
          const cpuUs = ((totalCpuMs(bridge.servingPids) - cpuBefore) * 1000) / Math.max(1, r.ok);
          if (r.errors.total > 0) throw new Error(`round ${round}, ${mode}: ${r.errors.total} errors (${r.firstError ?? ''})`);
          byMode.get(mode)!.push({ rps: r.rps, p99: r.latencyMs.p99, cpuUs });
          line.push(`${mode} ${Math.round(r.rps)}`);
        }
        bridge.truncateLog();
        process.stdout.write(`round ${round}: ${line.join('  ')}\n`);
      }
    } finally {
      await bridge.stop();
    }
  } finally {
    rmSync(modeDir, { recursive: true, force: true });
  }

  const base = byMode.get(modes[0]!)!;
  for (const mode of modes) {
    const runs = byMode.get(mode)!;
    const ratios = runs.map((r, i) => r.rps / base[i]!.rps);
    const higher = ratios.filter((x) => x > 1).length;
    process.stdout.write(
      `${mode.padEnd(10)} rate / ${modes[0]} ${median(ratios).toFixed(3)} (higher in ${higher} of ${runs.length})  ` +
        `${Math.round(median(runs.map((r) => r.rps)))} req/s  p99 ${median(runs.map((r) => r.p99)).toFixed(3)} ms  ` +
        `server ${median(runs.map((r) => r.cpuUs)).toFixed(1)} µs/req\n`,
    );
  }
  return 0;
}

process.exitCode = await main();
