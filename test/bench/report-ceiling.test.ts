/**
 * bench/lib/report.ts's generator ceiling: every run against the trivial responder counts, and the
 * headroom is the median of those runs over the best median any server reached. A single run used to
 * stand for the ceiling, and the host moved it by 20–30 % (BENCHMARKS.md, Session 25).
 */
import { describe, expect, it } from 'vitest';
import type { LoadResult } from '../../bench/loadgen.js';
import { renderReport, type RunFile, type RunRecord } from '../../bench/lib/report.js';

const summary = { p50: 0.1, p90: 0.2, p99: 0.3, max: 0.4, mean: 0.15 };

function record(label: string, connections: number, iteration: number, rps: number): RunRecord {
  const result: LoadResult = {
    tool: 'icap-bridge-bench/loadgen',
    scenario: 'options',
    preview: null,
    target: { host: '127.0.0.1', port: 1, service: 'any' },
    connections,
    mode: 'duration',
    warmupS: 1,
    durationS: 5,
    requests: rps * 5,
    ok: rps * 5,
    rps,
    latencyMs: summary,
    generatorQueueMs: summary,
    cycleMs: summary,
    errors: { total: 0, status: 0, socket: 0, timeout: 0, framing: 0 },
    statuses: { '200': rps * 5 },
    bytes: { sent: 0, received: 0 },
    reconnects: 0,
    cpu: { userMs: 100, systemMs: 400, percentOfOneCore: 10, usPerRequest: 7, eventLoopUtilization: 0.9 },
    firstError: null,
  };
  return { label, case: 'options', connections, iteration, quietBefore: null, machineBusyPercent: 50, serverCpuMs: 4000, result };
}

function runFile(records: RunRecord[]): RunFile {
  return {
    tool: 'icap-bridge-bench/run',
    date: '2026-11-22T00:00:00.000Z',
    wallSeconds: 60,
    machine: { nproc: 2, memoryMiB: 1024, cpuModel: 'test', kernel: 'test', node: 'v20', cicap: null, clamd: null },
    options: {
      durationS: 5,
      warmupS: 1,
      runs: 3,
      concurrency: [16],
      cases: [{ key: 'options', scenario: 'options', preview: undefined, clamd: false }],
      ceilingConc: [16],
      loadgenThreads: 1,
      generator: 'native',
      quietWaitMs: 0,
      quietBusy: 15,
    },
    targets: [
      { label: 'c-icap', kind: 'c-icap', description: 'c-icap' },
      { label: 'trivial', kind: 'trivial', description: 'the responder' },
    ],
    spoolLeft: {},
    records,
  };
}

describe('the report’s generator ceiling', () => {
  it('takes the median of the trivial runs and divides it by the best server median', () => {
    const records = [
      record('c-icap', 16, 1, 50_000),
      record('c-icap', 16, 2, 60_000),
      record('c-icap', 16, 3, 55_000),
      // One slow window (the host) must not decide the ceiling.
      record('trivial', 16, 1, 90_000),
      record('trivial', 16, 2, 121_000),
      record('trivial', 16, 3, 125_000),
    ];
    const md = renderReport(runFile(records));
    const row = md.split('\n').find((l) => l.startsWith('| options | 16 | 3 |'));
    expect(row).toBeDefined();
    const cells = row!.split('|').map((c) => c.trim());
    expect(cells[4]).toBe('121000'); // median of the three trivial runs
    expect(cells[10]).toBe('55000'); // the best server median
    expect(cells[11]).toBe('2.20'); // 121000 / 55000
  });
});
