/**
 * Process checks that tests (test/helpers, test/integration) and the benchmark (bench/lib) share
 * when they make sure every process they started is gone. Linux only (pgrep, signal 0).
 */
import { execFileSync } from 'node:child_process';

/** Whether `pid` still exists (signal 0 probes without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Direct children of `pid` (c-icap's worker processes, a cluster's workers). */
export function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}
