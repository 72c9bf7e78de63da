/**
 * Random file names for the spool's temp files and clamd's scan copies (spool.ts, scan-file.ts).
 *
 * Each name carries 96 bits from the CSPRNG, as before, but the bytes are drawn NAMES_PER_DRAW
 * names at a time: one synchronous randomBytes(12) per body was ≈ 1.8 % of the event loop's time
 * with 1 MiB RESPMODs via clamd (perf, BENCHMARKS.md, Session 17). A process draws its own bytes
 * (cluster workers are separate processes), and files are still created with 'wx', so a name that
 * exists already is an error, never a file of someone else's.
 */
import { randomBytes } from 'node:crypto';

const NAME_BYTES = 12;
const NAMES_PER_DRAW = 256;

let drawn = Buffer.alloc(0);
let used = 0;

/** `${prefix}<24 random hex digits>${suffix}`. */
export function randomFileName(prefix: string, suffix: string): string {
  if (used + NAME_BYTES > drawn.length) {
    drawn = randomBytes(NAME_BYTES * NAMES_PER_DRAW);
    used = 0;
  }
  const hex = drawn.toString('hex', used, used + NAME_BYTES);
  used += NAME_BYTES;
  return `${prefix}${hex}${suffix}`;
}
