/**
 * Splits a run's latencies by whether the server paused for GC while each request was in flight
 * (bench/tail-vs-gc.ts). A request "met a pause" when [sent, sent + latency] overlaps
 * [start, start + duration] of a pause. Only pauses that began inside the answers' span count.
 */
export interface TailSplit {
  all: Float64Array;
  metPause: Float64Array;
  clear: Float64Array;
  pauses: { count: number; meanMs: number; maxMs: number; byKind: Record<string, number> };
}

/** `answers`: (sent, latency) pairs; `gcs`: (start, duration, kind) triples in time order; all ms on one clock. */
export function splitByPauses(answers: Float64Array, gcs: Float64Array): TailSplit {
  const n = answers.length / 2;
  let first = Infinity;
  let last = -Infinity;
  for (let i = 0; i < answers.length; i += 2) {
    first = Math.min(first, answers[i]!);
    last = Math.max(last, answers[i]! + answers[i + 1]!);
  }
  const starts: number[] = [];
  const ends: number[] = [];
  const byKind: Record<string, number> = {};
  let sum = 0;
  let max = 0;
  for (let i = 0; i < gcs.length; i += 3) {
    const start = gcs[i]!;
    const dur = gcs[i + 1]!;
    if (start < first || start > last) continue;
    starts.push(start);
    ends.push(start + dur);
    sum += dur;
    max = Math.max(max, dur);
    const kind = String(gcs[i + 2]);
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  }
  const met: number[] = [];
  const clear: number[] = [];
  const all = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const sent = answers[2 * k]!;
    const lat = answers[2 * k + 1]!;
    all[k] = lat;
    // The last pause starting before the answer arrived. Pauses stop the one main thread, so they
    // never overlap, and the trace holds them in the order they happened.
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! < sent + lat) lo = mid + 1;
      else hi = mid;
    }
    const hit = lo > 0 && ends[lo - 1]! > sent;
    (hit ? met : clear).push(lat);
  }
  return {
    all: all.sort(),
    metPause: Float64Array.from(met).sort(),
    clear: Float64Array.from(clear).sort(),
    pauses: { count: starts.length, meanMs: starts.length > 0 ? sum / starts.length : Number.NaN, maxMs: max, byKind },
  };
}
