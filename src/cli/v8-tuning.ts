/**
 * How far V8 lets the old generation grow past what the last full GC left alive, set for a server
 * process before it serves.
 *
 * V8 counts memory allocated outside its heap since the last full GC (the ArrayBuffers behind
 * Buffers: every socket read of a body is a fresh 64 KiB one) against the old generation's limit,
 * and starts a full GC when what is left of the limit is smaller than the young generation. A
 * body-heavy server allocates such memory much faster than the young-generation GCs that free it
 * run, so with V8's own growing factor (1.9–3.5 × a ~18 MB live heap here) it ran a full GC every
 * ~16 MB of bodies: ~14 per second at one 1 MiB RESPMOD at a time via clamd, with the GC helper
 * threads using as much CPU as the event loop. With the factor at 4 (300 %; V8 itself chose
 * 1.9–3.5): 161–171 → 200–206 req/s and 5.1–5.4 → 2.2–2.3 ms of CPU per request in alternating
 * pairs (BENCHMARKS.md, Session 7). At 100 % it was worse than V8's own choice. The cost is garbage
 * kept longer: +8 MiB peak RSS in the 64 × 100 MiB memory run.
 *
 * Set at run time with v8.setFlagsFromString, which V8 reads at every limit computation. An
 * operator's own `--heap-growing-percent` (command line or NODE_OPTIONS) is left alone.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 300;

const OPERATOR_FLAG = /(?:^|\s)--heap[-_]growing[-_]percent(?:=|\s|$)/;

/** True when the operator chose the growing factor themselves (then it is not touched). */
export function operatorSetHeapGrowth(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return execArgv.some((arg) => OPERATOR_FLAG.test(arg)) || OPERATOR_FLAG.test(nodeOptions ?? '');
}

/** Sets the growing factor unless the operator did; returns the flag set, or null. */
export function tuneHeapGrowth(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS): string | null {
  if (operatorSetHeapGrowth(execArgv, nodeOptions)) return null;
  const flag = `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
  setFlagsFromString(flag);
  return flag;
}
