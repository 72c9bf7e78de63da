/**
 * Scenario `memory-64x100m` (issue 6, "Memory"): 64 connections each send ONE RESPMOD with a
 * 100 MiB body (bench/lib/big-body.ts: one shared 1 MiB chunk, backpressure respected), all at
 * once, with `Allow: 204`, and read the answer. Meanwhile the memory of every icap-bridge process
 * (the primary and its cluster workers) is sampled every 50 ms (bench/lib/rss-sampler.ts).
 * Afterwards the spool directory must hold no file (workers spool in icap-bridge-worker-<pid>/
 * subdirectories, so files are counted recursively).
 *
 * Pass: every answer 204, no file left, peak of the summed RSS ≤ 256 MiB. Everything is bounded
 * in time (10 min by default); on timeout every connection is destroyed and the result carries
 * the reason.
 */
import { setMaxListeners } from 'node:events';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { PIECE_BYTES, sendBigRespmod, type BigRespmodResult } from './big-body.js';
import { TreeMemorySampler, type TreeMemoryReport } from './rss-sampler.js';

export const MEMORY_SCENARIO = 'memory-64x100m';
export const RSS_BUDGET_BYTES = 256 * 1024 * 1024;

export interface MemoryScenarioOptions {
  host: string;
  port: number;
  service: string;
  /** The icap-bridge process started (the cluster primary when processes > 1). */
  rootPid: number;
  spoolDir: string;
  connections?: number;
  bodyBytes?: number;
  sampleIntervalMs?: number;
  timeoutMs?: number;
}

export interface MemoryScenarioResult {
  scenario: typeof MEMORY_SCENARIO;
  service: string;
  connections: number;
  bodyBytes: number;
  /** Final statuses, e.g. { "204": 64 } ("none" when no answer came). */
  statuses: Record<string, number>;
  /** First few failures (no answer, early answer, socket errors, timeout). */
  errors: string[];
  wallSeconds: number;
  /** Body MiB (all connections) per wall second. */
  mibPerSecond: number;
  memory: TreeMemoryReport;
  /** Files under the spool directory once every answer was read (after a bounded wait). */
  spoolFilesLeft: number;
  budgetBytes: number;
  /** Everything answered 204 and nothing left in the spool (the harness part). */
  ok: boolean;
  /** ok, and the peak RSS sum within budget. */
  pass: boolean;
}

/** Files (not directories) under `dir`, recursively; 0 when it does not exist. */
export function filesUnder(dir: string): number {
  let n = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) n += e.isDirectory() ? filesUnder(join(dir, e.name)) : 1;
  return n;
}

/** Waits (bounded) for the spool to empty: temp files are unlinked just after the answer goes out. */
export async function spoolFilesAfter(dir: string, waitMs = 5000): Promise<number> {
  const until = Date.now() + waitMs;
  let n = filesUnder(dir);
  while (n > 0 && Date.now() < until) {
    await sleep(100);
    n = filesUnder(dir);
  }
  return n;
}

export function countStatuses(results: readonly BigRespmodResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const k = r.status === 0 ? 'none' : String(r.status);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export async function runMemoryScenario(o: MemoryScenarioOptions): Promise<MemoryScenarioResult> {
  const connections = o.connections ?? 64;
  const bodyBytes = o.bodyBytes ?? 100 * PIECE_BYTES;
  const timeoutMs = o.timeoutMs ?? 600_000;
  const abort = new AbortController();
  setMaxListeners(connections + 1, abort.signal); // one abort listener per connection
  const timer = setTimeout(() => abort.abort(`${MEMORY_SCENARIO} timed out after ${timeoutMs / 1000} s`), timeoutMs);
  const sampler = new TreeMemorySampler(o.rootPid, o.sampleIntervalMs ?? 50);
  const started = performance.now();
  let results: BigRespmodResult[];
  try {
    results = await Promise.all(
      Array.from({ length: connections }, () => sendBigRespmod({ host: o.host, port: o.port, service: o.service, bodyBytes, signal: abort.signal })),
    );
  } finally {
    clearTimeout(timer);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const memory = sampler.stop();
  const spoolFilesLeft = await spoolFilesAfter(o.spoolDir);

  const statuses = countStatuses(results);
  const errors = results.filter((r) => r.error !== null).map((r) => r.error!);
  if (abort.signal.aborted) errors.unshift(String(abort.signal.reason));
  const sentMiB = results.reduce((a, r) => a + Math.min(r.bodyBytesSent, bodyBytes), 0) / PIECE_BYTES;
  const ok = statuses['204'] === connections && errors.length === 0 && spoolFilesLeft === 0;
  return {
    scenario: MEMORY_SCENARIO,
    service: o.service,
    connections,
    bodyBytes,
    statuses,
    errors: [...new Set(errors)].slice(0, 5),
    wallSeconds: Math.round(wallSeconds * 10) / 10,
    mibPerSecond: Math.round(sentMiB / wallSeconds),
    memory,
    spoolFilesLeft,
    budgetBytes: RSS_BUDGET_BYTES,
    ok,
    pass: ok && memory.peakSumBytes <= RSS_BUDGET_BYTES,
  };
}
