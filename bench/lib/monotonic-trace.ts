/**
 * Timelines two processes can line up: the generator's answers (bench/loadgen.ts --trace-out) and a
 * server's GC pauses (bench/lib/gc-trace-preload.mjs), read together by bench/tail-vs-gc.ts.
 *
 * performance.now() counts from each process's own start, so its readings cannot be compared
 * across processes. process.hrtime() reads CLOCK_MONOTONIC, which every process on the machine
 * shares: each timeline is shifted onto it by the offset between the two clocks, taken once.
 *
 * A trace file is raw Float64 values in the machine's byte order, in records of a fixed width
 * (2 for answers: sent at, latency; 3 for GC pauses: start, duration, kind), times in ms.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** Add to a performance.now() reading to get ms on CLOCK_MONOTONIC. */
export function monotonicOffsetMs(): number {
  return Number(process.hrtime.bigint()) / 1e6 - performance.now();
}

/** Writes (sent at, latency) pairs taken with performance.now(), shifted onto CLOCK_MONOTONIC. */
export function writeLatencyTrace(file: string, pairs: Float64Array): void {
  const offset = monotonicOffsetMs();
  for (let i = 0; i < pairs.length; i += 2) pairs[i]! += offset;
  writeFileSync(file, pairs);
}

/** A trace file's values. */
export function readTrace(file: string): Float64Array {
  const bytes = readFileSync(file);
  return new Float64Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.length / 8)).slice();
}
