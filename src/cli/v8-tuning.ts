/**
 * V8 garbage-collector settings a server process sets for itself before it serves, each unless the
 * operator chose it (on the command line or in NODE_OPTIONS). Set at run time with
 * v8.setFlagsFromString: V8 reads each of these flags anew at every use.
 *
 * --heap-growing-percent=300: how far V8 lets the old generation grow past what the last full GC
 * left alive. V8 counts memory allocated outside its heap since the last full GC (the ArrayBuffers
 * behind Buffers: every socket read of a body is a fresh 64 KiB one) against the old generation's
 * limit, and starts a full GC when what is left of the limit is smaller than the young generation.
 * A body-heavy server allocates such memory much faster than the young-generation GCs that free it
 * run, so with V8's own growing factor (1.9–3.5 × a ~18 MB live heap here) it ran a full GC every
 * ~16 MB of bodies: ~14 per second at one 1 MiB RESPMOD at a time via clamd, with the GC helper
 * threads using as much CPU as the event loop. With the factor at 4 (300 %; V8 itself chose
 * 1.9–3.5): 161–171 → 200–206 req/s and 5.1–5.4 → 2.2–2.3 ms of CPU per request in alternating
 * pairs (BENCHMARKS.md, Session 7). At 100 % it was worse than V8's own choice. The cost is garbage
 * kept longer: +8 MiB peak RSS in the 64 × 100 MiB memory run.
 *
 * --no-parallel-scavenge: a young-generation GC (scavenge) stops the event loop, and with it every
 * connection in flight, so its pause shows in the latency's p99. What survives one here is tiny
 * (~10 KB: the objects of the requests in flight), so splitting the work over helper threads buys
 * nothing, and on a small machine shared with the clients or the engine those threads wait for a
 * core: the pause was 0.60–0.62 ms with them and 0.44–0.45 ms without, at 16 connections of
 * REQMOD null-body on this 2-core machine (BENCHMARKS.md, Session 11).
 *
 * --no-minor-gc-task: by default V8 posts a task to run the scavenge once the young generation is
 * 80 % full, hoping to find the program idle. A loaded server is never idle, so the task only makes
 * every scavenge come at 80 % instead of 100 %: a fifth more of them, each as long (its pause is
 * mostly per-page work over the whole young generation, not the ~10 KB that survives). At 16
 * connections a scavenge holds up the 16 requests in flight, and the p99 sits where they are: with
 * the task 0.93 % of REQMOD null-body answers met a pause and the p99 was theirs; without it 0.77 %
 * (BENCHMARKS.md, Session 15, bench/tail-vs-gc.ts). Read by V8 at each allocation step, so setting
 * it at run time takes effect at once.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 300;

/** The flags set, each with the V8 option name an operator's own setting is recognized by. */
export const V8_TUNING: readonly { readonly option: string; readonly flag: string }[] = [
  { option: 'heap-growing-percent', flag: `--heap-growing-percent=${HEAP_GROWING_PERCENT}` },
  { option: 'parallel-scavenge', flag: '--no-parallel-scavenge' },
  { option: 'minor-gc-task', flag: '--no-minor-gc-task' },
];

/**
 * True when the operator set V8 option `option` themselves: `--option`, `--no-option`, `--option=x`
 * or `--option x`, with `-` or `_` between words (V8 takes both).
 */
export function operatorSetV8Option(option: string, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const name = option.replace(/-/g, '[-_]');
  const pattern = new RegExp(`(?:^|\\s)--(?:no[-_])?${name}(?:=|\\s|$)`);
  return execArgv.some((arg) => pattern.test(arg)) || pattern.test(nodeOptions ?? '');
}

/** Sets each flag of V8_TUNING the operator did not set; returns the flags set. */
export function tuneV8(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS): string[] {
  const set: string[] = [];
  for (const { option, flag } of V8_TUNING) {
    if (operatorSetV8Option(option, execArgv, nodeOptions)) continue;
    setFlagsFromString(flag);
    set.push(flag);
  }
  return set;
}
