/**
 * Transactions per second of one body through two services of one icap-bridge: the embedded
 * engine vs clamd (a private clamd with a tiny offline DB), alternating A B A B, same load.
 * Issue 4's "tps clamd vs embedded on the same body" figure.
 *
 *   npm run build && node --import tsx bench/engine-tps.ts [--scenario respmod-1m] [--connections 16] [--duration 5] [--runs 3]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { probeOnce, runLoad } from './loadgen.js';
import { ROOT } from './lib/bridge-process.js';
import { startBenchClamd } from './lib/clamd.js';
import { freePort } from './lib/ports.js';
import type { ScenarioName } from './lib/scenarios.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'respmod-1m' },
    connections: { type: 'string', default: '16' },
    duration: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
  },
});
const scenario = values.scenario as ScenarioName;
const connections = Number(values.connections);
const duration = Number(values.duration);
const runs = Number(values.runs);

const clamd = await startBenchClamd({ maxThreads: 16, maxQueue: 64, streamMaxLength: 64 * 1024 * 1024 });
const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-engine-tps-'));
const config = join(dir, 'icap-bridge.yaml');
// The verdict cache is off: every request must really be scanned by its engine.
writeFileSync(
  config,
  `server:\n  listen: [{ host: 127.0.0.1, port: ${port} }]\ncache: { enabled: false }\nlogging: { access_log: false }\n` +
    `backends:\n  builtin: { type: builtin, workers: 1 }\n  clamd: { type: clamd, endpoints: ["${clamd.socketPath}"], stream_max_bytes: 67108864, max_concurrency: 16 }\n` +
    `services:\n  embedded: { backends: [builtin], commit_on_idle: { enabled: false } }\n  clamd: { backends: [clamd], commit_on_idle: { enabled: false } }\n`,
);
const bridge = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
try {
  for (let i = 0; i < 100 && !(await probeOnce({ host: '127.0.0.1', port, service: 'embedded', scenario: 'options' }).then(() => true, () => false)); i++) await sleep(100);
  const rates: Record<string, number[]> = { embedded: [], clamd: [] };
  for (let run = 0; run < runs; run++) {
    for (const service of ['embedded', 'clamd']) {
      const r = await runLoad({ host: '127.0.0.1', port, service, scenario, connections, durationS: duration, warmupS: 1, requestTimeoutMs: 30_000 });
      if (r.errors.total > 0) throw new Error(`${service}: ${JSON.stringify(r.errors)} errors`);
      rates[service]!.push(r.rps);
      console.log(`${service} run ${run + 1}: ${r.rps.toFixed(0)} tps, p99 ${r.latencyMs.p99.toFixed(1)} ms`);
    }
  }
  const e = median(rates['embedded']!);
  const c = median(rates['clamd']!);
  console.log(`\n${scenario} c=${connections}: embedded ${e.toFixed(0)} tps, clamd ${c.toFixed(0)} tps (clamd/embedded ${(c / e).toFixed(2)}), ${clamd.version}`);
} finally {
  if (bridge.exitCode === null && bridge.signalCode === null) {
    const exited = new Promise((resolve) => bridge.once('exit', resolve));
    bridge.kill('SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]))) bridge.kill('SIGKILL');
  }
  await clamd.stop();
  rmSync(dir, { recursive: true, force: true }); // its config file
}
