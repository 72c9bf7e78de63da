/** Machine facts and whole-machine CPU sampling (Linux /proc) for benchmark reports. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export interface MachineInfo {
  nproc: number;
  memoryMiB: number;
  cpuModel: string;
  kernel: string;
  node: string;
  cicap: string | null;
}

export function machineInfo(): MachineInfo {
  let cpuModel = 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1] !== undefined) cpuModel = m[1].trim();
  } catch {
    // not Linux
  }
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux
  }
  let cicap: string | null = null;
  try {
    cicap = execFileSync('c-icap', ['-V'], { encoding: 'utf8', timeout: 5000 }).trim() || null;
  } catch {
    cicap = null;
  }
  return {
    nproc: availableParallelism(),
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
    cpuModel,
    kernel,
    node: process.version,
    cicap,
  };
}

export interface CpuSnapshot {
  busy: number;
  total: number;
}

/** Aggregate CPU jiffies from /proc/stat (null when unavailable). */
export function cpuSnapshot(): CpuSnapshot | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** Whole-machine busy percentage (all cores = 100) between two snapshots. */
export function busyPercent(a: CpuSnapshot | null, b: CpuSnapshot | null): number {
  if (a === null || b === null || b.total <= a.total) return Number.NaN;
  return Math.round(((b.busy - a.busy) / (b.total - a.total)) * 1000) / 10;
}

/**
 * Waits (bounded by maxWaitMs) until the machine is quiet: whole-machine busy below
 * `maxBusyPercent` over a `sampleMs` window. Other work on a shared 2-core machine skews
 * results badly, so runs start only once it is quiet, or after the wait with a flag.
 */
export async function waitForQuiet(
  maxBusyPercent: number,
  maxWaitMs: number,
  sampleMs = 500,
): Promise<{ quiet: boolean; busyPercent: number; waitedMs: number }> {
  const start = Date.now();
  let busy = Number.NaN;
  for (let i = 0; i < Math.max(1, Math.ceil(maxWaitMs / sampleMs)); i++) {
    const a = cpuSnapshot();
    await sleep(sampleMs);
    busy = busyPercent(a, cpuSnapshot());
    if (!(busy >= maxBusyPercent)) return { quiet: true, busyPercent: busy, waitedMs: Date.now() - start };
    if (Date.now() - start >= maxWaitMs) break;
  }
  return { quiet: false, busyPercent: busy, waitedMs: Date.now() - start };
}
