/**
 * bench/lib/report.ts from synthetic runs.
 * - The generator ceiling: every run against the trivial responder counts, and the headroom is the
 *   median of those runs over the best median any server reached. A single run used to stand for the
 *   ceiling, and the host moved it by 20–30 % (BENCHMARKS.md, Session 25).
 * - The open-loop cases (NAME@RATE): their own table, latency and CPU per request against c-icap's,
 *   and kept out of the closed-loop table and the ceiling, where a set rate would pass for a result.
 */
import { describe, expect, it } from 'vitest';
import type { LoadResult } from '../../bench/loadgen.js';
import { renderReport, type Case, type RunFile, type RunRecord, type TargetInfo } from '../../bench/lib/report.js';

const summary = { p50: 0.1, p90: 0.2, p99: 0.3, max: 0.4, mean: 0.15 };

interface RecordExtra {
  caseKey?: string;
  p99?: number;
  serverCpuMs?: number;
  openLoop?: LoadResult['openLoop'];
}

function record(label: string, connections: number, iteration: number, rps: number, extra: RecordExtra = {}): RunRecord {
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
    latencyMs: { ...summary, p99: extra.p99 ?? summary.p99 },
    generatorQueueMs: summary,
    cycleMs: summary,
    errors: { total: 0, status: 0, socket: 0, timeout: 0, framing: 0 },
    statuses: { '200': rps * 5 },
    bytes: { sent: 0, received: 0 },
    reconnects: 0,
    cpu: { userMs: 100, systemMs: 400, percentOfOneCore: 10, usPerRequest: 7, eventLoopUtilization: 0.9 },
    firstError: null,
    ...(extra.openLoop !== undefined ? { openLoop: extra.openLoop } : {}),
  };
  const serverCpuMs = extra.serverCpuMs ?? 4000;
  return { label, case: extra.caseKey ?? 'options', connections, iteration, quietBefore: null, machineBusyPercent: 50, serverCpuMs, result };
}

const OPTIONS_CASE: Case = { key: 'options', scenario: 'options', preview: undefined, clamd: false };

function runFile(records: RunRecord[], cases: Case[] = [OPTIONS_CASE], targets: TargetInfo[] = []): RunFile {
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
      cases,
      ceilingConc: [16],
      loadgenThreads: 1,
      generator: 'native',
      quietWaitMs: 0,
      quietBusy: 15,
    },
    targets: [
      ...targets,
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

describe('the report’s open-loop cases', () => {
  const openCase: Case = { key: 'options@20000', scenario: 'options', preview: undefined, clamd: false, offeredRate: 20_000 };
  const bridge: TargetInfo = { label: 'bridge×1', kind: 'bridge', description: 'the bridge' };
  const open = (label: string, iteration: number, p99: number, serverCpuMs: number, p99FromDue: number): RunRecord => {
    const lag = { p50: 0.02, p90: 0.03, p99: p99FromDue - p99, max: 1, mean: 0.02 };
    const fromDue = { p50: 0.12, p90: 0.2, p99: p99FromDue, max: 2, mean: 0.15 };
    return record(label, 16, iteration, 20_000, { caseKey: openCase.key, p99, serverCpuMs, openLoop: { offeredRate: 20_000, latencyFromDueMs: fromDue, sendLagMs: lag } });
  };
  const records = [
    record('bridge×1', 16, 1, 60_000),
    record('c-icap', 16, 1, 50_000),
    // 100,000 requests a run: 4000 ms of server CPU is 40 µs per request.
    open('bridge×1', 1, 0.5, 4000, 1.0),
    open('bridge×1', 2, 0.6, 3800, 1.2),
    open('bridge×1', 3, 0.4, 4200, 0.9),
    open('c-icap', 1, 0.25, 2000, 0.3),
    open('c-icap', 2, 0.2, 2100, 0.35),
    open('c-icap', 3, 0.3, 1900, 0.4),
    record('trivial', 16, 1, 130_000),
  ];
  const md = renderReport(runFile(records, [OPTIONS_CASE, openCase], [bridge]));
  const lines = md.split('\n');

  it('compares latency and CPU per request at the same rate, in a table of their own', () => {
    expect(md).toContain('### At the same offered rate (open loop)');
    const row = lines.find((l) => l.startsWith('| options@20000 | 16 | bridge×1 |'));
    expect(row).toBeDefined();
    const cells = row!.split('|').map((c) => c.trim());
    // runs, req/s, p50, p99, p99 from due, send lag p99, server CPU %, µs/req, p99 / c-icap, µs/req / c-icap
    expect(cells.slice(4, 14)).toEqual(['3', '20000', '0.100', '0.500', '1.000', '0.500', '80', '40.0', '2.00', '2.00']);
    // c-icap's own row carries no ratio.
    const cicap = lines.find((l) => l.startsWith('| options@20000 | 16 | c-icap |'))!.split('|').map((c) => c.trim());
    expect(cicap.slice(7, 9)).toEqual(['0.250', '0.350']);
    expect(cicap.slice(12, 14)).toEqual(['', '']);
  });

  it('keeps them out of the closed-loop table and the ceiling', () => {
    const closedLoopTable = md.slice(0, md.indexOf('### At the same offered rate'));
    expect(closedLoopTable).toMatch(/^\| options \| 16 \| 60000 \|/m);
    expect(closedLoopTable).not.toContain('options@20000');
    const ceiling = lines.filter((l) => l.startsWith('| options@20000 | 16 | 1 |'));
    expect(ceiling).toHaveLength(0);
    // The ceiling's best server median is the closed loop's 60,000, not the open loop's set 20,000.
    const ceilingRow = lines.find((l) => l.startsWith('| options | 16 | 1 | 130000 |'))!.split('|').map((c) => c.trim());
    expect(ceilingRow[10]).toBe('60000');
  });
});
