/**
 * Where log lines go by default: stdout through pino's SonicBoom, batched. SonicBoom's default
 * (minLength 0) starts a write as soon as the previous one is done, so at thousands of access
 * lines per second most lines cost a write(2) of their own. Batched, lines are written once
 * `minLength` bytes have gathered, or at the latest FLUSH_INTERVAL_MS (25 ms) after they were logged.
 */
import { pino } from 'pino';

/** The longest a line waits in the buffer on a quiet server. */
const FLUSH_INTERVAL_MS = 25;
/** After the last line, keep flushing this long: a flush during a write in progress is skipped. */
const FLUSH_QUIET_MS = 1000;

export interface BatchedDestinationOptions {
  /** Bytes gathered before a write; must be below maxWrite. */
  readonly minLength: number;
  /** Largest single write (a cluster caps it at PIPE_BUF so lines of processes never interleave). */
  readonly maxWrite: number;
}

export type LogDestination = ReturnType<typeof pino.destination>;

export function batchedStdout(options: BatchedDestinationOptions): LogDestination {
  const destination = pino.destination({ dest: 1, sync: false, minLength: options.minLength, maxWrite: options.maxWrite });
  let lastWrite = 0;
  const write = destination.write.bind(destination);
  destination.write = (data: string): boolean => {
    lastWrite = Date.now();
    return write(data);
  };
  const timer = setInterval(() => {
    if (Date.now() - lastWrite > FLUSH_QUIET_MS) return;
    try {
      destination.flush();
    } catch {
      // Destroyed (the process is ending): nothing left to write to.
    }
  }, FLUSH_INTERVAL_MS);
  timer.unref();
  destination.once('close', () => clearInterval(timer));
  return destination;
}
