/**
 * CPU time of server processes from /proc/PID/stat (utime + stime, all threads), so each run can
 * say how much CPU the server under test spent per request, beside the generator's own figure.
 * Linux only; elsewhere every reading is null.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep the Linux default
}

/** CPU ms used so far by `pid` (its threads included), or null when it is gone or unreadable. */
function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": the comm may hold spaces, so split after its closing parenthesis.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}

// Direct children of a pid: shared with the tests' helpers.
export { childPids } from '../../tools/processes.js';

/** Sum over `pids` of CPU ms; pids that vanished count as 0. */
export function totalCpuMs(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0);
}
