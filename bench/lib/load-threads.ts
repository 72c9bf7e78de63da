/**
 * The load generator on several threads (worker_threads), for when one event loop is the limit:
 * the connections are split over T threads, each running bench/loadgen.ts's runLoad on its share,
 * and the results merged — requests, statuses, errors and bytes summed, latency percentiles taken
 * from all samples together. The window is the span from the first thread opening its window to
 * the last closing it (they open within milliseconds: same warm-up, started together).
 *
 * CPU: process.cpuUsage() is per process, so the main thread reads it at those two edges: the
 * figure covers every generator thread, which is what "the generator's CPU" must mean here.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { runLoadWithSamples, type LoadOptions, type LoadResult } from '../loadgen.js';
import { latencySummaryMs, round } from './stats.js';

/**
 * A worker thread does not inherit the `--import tsx` loader, so its entry registers tsx itself
 * (tsx/esm/api, resolved from here) and then imports the TypeScript thread module.
 */
const THREAD_BOOT = `
  import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
    .then(({ register }) => { register(); return import(${JSON.stringify(new URL('./load-thread.ts', import.meta.url).href)}); });
`;

type ThreadMessage = { type: 'window'; edge: 'start' | 'end' } | { type: 'done'; result: LoadResult; samples: Float64Array };

export async function runLoadThreads(opts: LoadOptions, threads: number): Promise<LoadResult> {
  if (threads <= 1) return (await runLoadWithSamples(opts)).result;
  const base = Math.floor(opts.connections / threads);
  const shares = Array.from({ length: threads }, (_, i) => base + (i < opts.connections % threads ? 1 : 0)).filter((c) => c > 0);
  let started = 0;
  let ended = 0;
  let t0 = 0;
  let t1 = 0;
  let cpu0: NodeJS.CpuUsage = { user: 0, system: 0 };
  let cpu: NodeJS.CpuUsage = { user: 0, system: 0 };
  const { onWindow: _notCloneable, ...plain } = opts;
  const runThread = (connections: number): Promise<{ result: LoadResult; samples: Float64Array }> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(THREAD_BOOT, { eval: true, workerData: { ...plain, connections } });
      worker.on('message', (m: ThreadMessage) => {
        if (m.type === 'window' && m.edge === 'start' && started++ === 0) {
          t0 = performance.now();
          cpu0 = process.cpuUsage();
        } else if (m.type === 'window' && m.edge === 'end' && ++ended === shares.length) {
          t1 = performance.now();
          cpu = process.cpuUsage(cpu0);
        } else if (m.type === 'done') {
          resolve({ result: m.result, samples: m.samples });
          void worker.terminate();
        }
      });
      worker.once('error', reject);
    });
  const parts = await Promise.all(shares.map(runThread));
  return merge(parts, t1 - t0, cpu);
}

function merge(parts: { result: LoadResult; samples: Float64Array }[], windowMs: number, cpu: NodeJS.CpuUsage): LoadResult {
  const first = parts[0]!.result;
  const all = new Float64Array(parts.reduce((n, p) => n + p.samples.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p.samples, at);
    at += p.samples.length;
  }
  all.sort();
  const total = <K extends 'requests' | 'ok' | 'reconnects'>(k: K): number => parts.reduce((n, p) => n + p.result[k], 0);
  const statuses: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p.result.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const errors = { total: 0, status: 0, socket: 0, timeout: 0, framing: 0 };
  for (const p of parts) for (const k of Object.keys(errors) as (keyof typeof errors)[]) errors[k] += p.result.errors[k];
  // Each thread measured its own window; rates add up over the common span.
  const rps = parts.reduce((n, p) => n + p.result.rps, 0);
  const requests = total('requests');
  const cpuUs = cpu.user + cpu.system;
  return {
    ...first,
    connections: parts.reduce((n, p) => n + p.result.connections, 0),
    durationS: round(windowMs / 1000, 3),
    requests,
    ok: total('ok'),
    rps: round(rps, 1),
    latencyMs: latencySummaryMs(all),
    generatorQueueMs: mergeWorst(parts.map((p) => p.result.generatorQueueMs), parts.map((p) => p.result.ok)),
    cycleMs: mergeWorst(parts.map((p) => p.result.cycleMs), parts.map((p) => p.result.ok)),
    errors,
    statuses,
    bytes: {
      sent: parts.reduce((n, p) => n + p.result.bytes.sent, 0),
      received: parts.reduce((n, p) => n + p.result.bytes.received, 0),
    },
    reconnects: total('reconnects'),
    cpu: {
      userMs: round(cpu.user / 1000, 1),
      systemMs: round(cpu.system / 1000, 1),
      percentOfOneCore: round((cpuUs / 1000 / Math.max(windowMs, 1e-6)) * 100, 1),
      usPerRequest: round(requests > 0 ? cpuUs / requests : Number.NaN, 2),
      // The busiest thread's loop says whether the generator was saturated.
      eventLoopUtilization: Math.max(...parts.map((p) => p.result.cpu.eventLoopUtilization)),
    },
    firstError: parts.map((p) => p.result.firstError).find((e) => e !== null) ?? null,
  };
}

type Summary = LoadResult['generatorQueueMs'];

/**
 * Per-thread figures that cannot be pooled (each thread's own queueing, each connection's cycle):
 * the worst thread's percentiles, the mean weighted by answers.
 */
function mergeWorst(summaries: (Summary | undefined)[], oks: number[]): Summary {
  const present = summaries.map((s) => s ?? { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN });
  const worst = (k: 'p50' | 'p90' | 'p99' | 'max'): number => round(Math.max(...present.map((s) => s[k])), 3);
  const ok = oks.reduce((n, k) => n + k, 0);
  const mean = ok > 0 ? present.reduce((n, s, i) => n + s.mean * oks[i]!, 0) / ok : Number.NaN;
  return { p50: worst('p50'), p90: worst('p90'), p99: worst('p99'), max: worst('max'), mean: round(mean, 3) };
}
