/**
 * Is the latency tail the server's GC? Lines up the generator's answers with the server's GC pauses
 * on the shared monotonic clock (bench/lib/monotonic-trace.ts) and splits the latencies into those
 * whose request was in flight during a pause and those that were not.
 *
 *   GC_TRACE_OUT=/tmp/gc.bin node --import ./bench/lib/gc-trace-preload.mjs dist/src/cli.js --config C &
 *   node --import tsx bench/loadgen.ts --port P --service reqmod --scenario reqmod-null -c 16 --trace-out /tmp/lat.bin
 *   kill -USR2 <server pid>        # writes /tmp/gc.bin
 *   node --import tsx bench/tail-vs-gc.ts --latency /tmp/lat.bin --gc /tmp/gc.bin
 *
 * How to read it (BENCHMARKS.md, Session 15): when "no pause" has a p99 well under "all", the tail is
 * the GC's, and what moves it is how many requests meet a pause (16 per scavenge at 16 connections),
 * not how fast the rest are served.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { readTrace } from './lib/monotonic-trace.js';
import { percentile, round } from './lib/stats.js';
import { splitByPauses } from './lib/tail-split.js';

const QUANTILES = [0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999] as const;

function quantileRow(label: string, sorted: Float64Array, total: number): string {
  const cells = QUANTILES.map((q) => `p${round(q * 100, 1)} ${round(percentile(sorted, q), 3)}`);
  return `${label.padEnd(16)} n ${String(sorted.length).padStart(8)} (${round((sorted.length / Math.max(total, 1)) * 100, 2)} %)  ${cells.join('  ')}`;
}

function main(): number {
  const { values } = parseArgs({
    options: { latency: { type: 'string' }, gc: { type: 'string' } },
    strict: true,
  });
  if (values.latency === undefined || values.gc === undefined) {
    console.error('usage: node --import tsx bench/tail-vs-gc.ts --latency LAT.bin --gc GC.bin');
    return 2;
  }
  const split = splitByPauses(readTrace(values.latency), readTrace(values.gc));
  const p = split.pauses;
  console.log(
    `GC pauses in the window: ${p.count} (kinds ${JSON.stringify(p.byKind)}; 1 = scavenge), mean ${round(p.meanMs, 3)} ms, max ${round(p.maxMs, 3)} ms`,
  );
  const total = split.all.length;
  console.log(quantileRow('all', split.all, total));
  console.log(quantileRow('met a pause', split.metPause, total));
  console.log(quantileRow('no pause', split.clear, total));
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main();
