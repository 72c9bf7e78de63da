/**
 * Preload for a server whose GC pauses are to be lined up with the generator's latencies
 * (bench/tail-vs-gc.ts):
 *
 *   GC_TRACE_OUT=/tmp/gc.bin node --import ./bench/lib/gc-trace-preload.mjs dist/src/cli.js --config …
 *
 * Plain JavaScript, so the measured server loads no TypeScript loader. Records every GC Node reports
 * (start, duration, kind: 1 minor, 2 major, 4 incremental, 8 weak callbacks), times in ms on
 * CLOCK_MONOTONIC as bench/lib/monotonic-trace.ts writes them. On SIGUSR2 it writes what it has to
 * $GC_TRACE_OUT (default ./gc-trace.bin), clears it, and keeps running.
 */
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

/** @type {number[]} */
let records = [];
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    records.push(e.startTime, e.duration, /** @type {{ kind?: number }} */ (e.detail)?.kind ?? 0);
  }
});
observer.observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
  const offset = Number(process.hrtime.bigint()) / 1e6 - performance.now();
  const out = Float64Array.from(records);
  for (let i = 0; i < out.length; i += 3) out[i] += offset;
  records = [];
  const file = process.env.GC_TRACE_OUT ?? 'gc-trace.bin';
  writeFileSync(file, out);
  process.stderr.write(`gc trace (${out.length / 3} pauses) written to ${file}\n`);
});
