/**
 * Memory of a process tree from /proc (Linux): a root pid and all its descendants (the icap-bridge
 * primary and its cluster workers), sampled on an interval. Per sample it reads VmRSS, RssAnon
 * and RssFile from /proc/PID/status; it keeps the sample where the SUM of VmRSS peaked (with its
 * per-process split) and each process's own peak. At the end it reads each process's VmHWM
 * (the kernel's own peak, which a sample can miss).
 *
 * RSS counts shared file pages (the node binary, shared libraries: RssFile) once per process, so
 * the sum over several processes overstates what they take together; the anon/file split at the
 * peak shows how much. (Pss from smaps_rollup would not double-count, but reading it costs ~3 ms
 * per 200 MiB process and takes the target's mmap lock: too heavy to sample every 50 ms.)
 *
 * resetPeaks() writes 5 to /proc/PID/clear_refs, which resets VmHWM to the current RSS, so the
 * VmHWM read at the end covers the scenario only, not earlier runs on the same processes.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

const KiB = 1024;

export interface ProcessMemory {
  pid: number;
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
}

export interface ProcessPeak {
  pid: number;
  /** The process's highest sampled VmRSS. */
  peakRssBytes: number;
  /** VmHWM at the end (since resetPeaks, when that worked); null when the process was gone. */
  hwmBytes: number | null;
}

export interface TreeMemoryReport {
  /** The process the tree hangs from (the cluster primary when there are workers). */
  rootPid: number;
  samples: number;
  /** Longest gap between two samples (the interval is a target, not a promise, on a busy loop). */
  maxGapMs: number;
  /** Sum of VmRSS over the tree before the first sample of the run. */
  baselineSumBytes: number;
  /** Highest sampled sum of VmRSS over the tree, and the processes at that moment. */
  peakSumBytes: number;
  atPeak: ProcessMemory[];
  perProcess: ProcessPeak[];
  /** Sum of the VmHWM at the end: an upper bound of the true peak of the sum. */
  hwmSumBytes: number;
  /** Whether VmHWM was reset at the start (clear_refs) for every process. */
  hwmReset: boolean;
}

function statusFields(pid: number): Map<string, number> | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile):\s+(\d+) kB/.exec(line);
    if (m !== null) out.set(m[1]!, Number(m[2]) * KiB);
  }
  return out;
}

/** `root` and every descendant, from /proc/PID/task/TID/children (a file read, no fork). */
export function processTree(root: number): number[] {
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0 && out.length < 1000) {
    const pid = todo.pop()!;
    out.push(pid);
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) {
          if (child.trim() !== '') todo.push(Number(child));
        }
      } catch {
        // thread gone
      }
    }
  }
  return out;
}

function readTree(root: number): ProcessMemory[] {
  const out: ProcessMemory[] = [];
  for (const pid of processTree(root)) {
    const f = statusFields(pid);
    if (f === null || !f.has('VmRSS')) continue;
    out.push({ pid, rssBytes: f.get('VmRSS')!, anonBytes: f.get('RssAnon') ?? 0, fileBytes: f.get('RssFile') ?? 0 });
  }
  return out;
}

const sum = (ps: ProcessMemory[]): number => ps.reduce((a, p) => a + p.rssBytes, 0);

export class TreeMemorySampler {
  readonly #root: number;
  readonly #timer: NodeJS.Timeout;
  readonly #peakByPid = new Map<number, number>();
  #samples = 0;
  #last = performance.now();
  #maxGapMs = 0;
  #baseline: number;
  #peakSum = 0;
  #atPeak: ProcessMemory[] = [];
  #hwmReset: boolean;

  constructor(root: number, intervalMs: number) {
    this.#root = root;
    this.#hwmReset = TreeMemorySampler.resetPeaks(root);
    this.#baseline = sum(readTree(root));
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Resets VmHWM of every process of the tree; false when any write failed. */
  static resetPeaks(root: number): boolean {
    let ok = true;
    for (const pid of processTree(root)) {
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
      } catch {
        ok = false;
      }
    }
    return ok;
  }

  sample(): void {
    const now = performance.now();
    if (this.#samples > 0) this.#maxGapMs = Math.max(this.#maxGapMs, now - this.#last);
    this.#last = now;
    this.#samples++;
    const ps = readTree(this.#root);
    for (const p of ps) this.#peakByPid.set(p.pid, Math.max(this.#peakByPid.get(p.pid) ?? 0, p.rssBytes));
    const total = sum(ps);
    if (total > this.#peakSum) {
      this.#peakSum = total;
      this.#atPeak = ps;
    }
  }

  /** Stops sampling (one last sample first) and reads the kernel's peaks. */
  stop(): TreeMemoryReport {
    this.sample();
    clearInterval(this.#timer);
    const perProcess = [...this.#peakByPid].map(([pid, peakRssBytes]): ProcessPeak => ({
      pid,
      peakRssBytes,
      hwmBytes: statusFields(pid)?.get('VmHWM') ?? null,
    }));
    return {
      rootPid: this.#root,
      samples: this.#samples,
      maxGapMs: Math.round(this.#maxGapMs),
      baselineSumBytes: this.#baseline,
      peakSumBytes: this.#peakSum,
      atPeak: this.#atPeak,
      perProcess,
      hwmSumBytes: perProcess.reduce((a, p) => a + (p.hwmBytes ?? 0), 0),
      hwmReset: this.#hwmReset,
    };
  }
}
