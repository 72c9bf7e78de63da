import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { monotonicOffsetMs, readTrace, writeLatencyTrace } from '../../bench/lib/monotonic-trace.js';
import { splitByPauses } from '../../bench/lib/tail-split.js';

describe('splitByPauses (bench/tail-vs-gc.ts)', () => {
  // Answers as (sent, latency) pairs; pauses as (start, duration, kind) triples, ms on one clock.
  const answers = Float64Array.from([
    0, 1, // [0, 1]: before the pause
    9, 1.5, // [9, 10.5]: overlaps the pause's start
    10.2, 0.3, // [10.2, 10.5]: inside it
    10.9, 2, // [10.9, 12.9]: starts after it ended
    20, 5, // [20, 25]: spans the second pause
    30, 1, // [30, 31]: after both
  ]);
  const pauses = Float64Array.from([10, 0.8, 1, 22, 0.5, 1, 100, 3, 2]);

  it('puts a request with its in-flight time overlapping a pause in "met a pause", the rest in "no pause"', () => {
    const split = splitByPauses(answers, pauses);
    expect([...split.metPause]).toEqual([0.3, 1.5, 5]);
    expect([...split.clear]).toEqual([1, 1, 2]);
    expect(split.all.length).toBe(6);
  });

  it('counts only the pauses that began while the answers were coming in', () => {
    const split = splitByPauses(answers, pauses);
    expect(split.pauses.count).toBe(2); // the one at 100 ms is after the last answer
    expect(split.pauses.byKind).toEqual({ '1': 2 });
    expect(split.pauses.maxMs).toBe(0.8);
    expect(split.pauses.meanMs).toBeCloseTo(0.65, 10);
  });

  it('meets no pause when there was none', () => {
    const split = splitByPauses(answers, new Float64Array(0));
    expect(split.metPause.length).toBe(0);
    expect(split.clear.length).toBe(6);
  });
});

describe('latency traces on the shared monotonic clock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-trace-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes send times shifted onto CLOCK_MONOTONIC and latencies as they were', () => {
    const file = join(dir, 'lat.bin');
    const sentAt = performance.now();
    writeLatencyTrace(file, Float64Array.from([sentAt, 0.25]));
    const back = readTrace(file);
    expect(back.length).toBe(2);
    expect(back[1]).toBe(0.25);
    const monotonicNow = Number(process.hrtime.bigint()) / 1e6;
    // Shifted by the offset between the two clocks: within a few ms of hrtime read now.
    expect(Math.abs(back[0]! - (sentAt + monotonicOffsetMs()))).toBeLessThan(1);
    expect(back[0]!).toBeLessThanOrEqual(monotonicNow);
    expect(monotonicNow - back[0]!).toBeLessThan(1000);
  });
});
