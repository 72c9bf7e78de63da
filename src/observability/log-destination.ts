/**
 * Where log lines go by default: stdout through pino's SonicBoom, batched twice.
 *
 * 1. Lines logged during one turn of the event loop are gathered in an array and handed to
 *    SonicBoom together at the end of the turn (setImmediate), joined into chunks of at most
 *    `maxWrite` bytes of whole lines. SonicBoom appends every string it is given to its last
 *    pending buffer and measures that buffer again (Buffer.byteLength flattens it), so line by line
 *    that cost grew with the buffer; per turn it is paid once per chunk.
 * 2. SonicBoom writes once `minLength` bytes have gathered, or at the latest FLUSH_INTERVAL_MS
 *    (25 ms) after lines were logged. Its default (minLength 0) would start a write(2) as soon as
 *    the previous one is done, at thousands of access lines per second nearly one per line.
 *
 * flush(), flushSync() (pino calls it when the process exits) and end() hand pending lines over
 * first, so nothing logged before them is lost.
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
  /** File descriptor to write to: stdout unless a test says otherwise. */
  readonly fd?: number;
}

export type LogDestination = ReturnType<typeof pino.destination>;

export function batchedStdout(options: BatchedDestinationOptions): LogDestination {
  const destination = pino.destination({ dest: options.fd ?? 1, sync: false, minLength: options.minLength, maxWrite: options.maxWrite });
  const sonicWrite = destination.write.bind(destination);
  const sonicFlush = destination.flush.bind(destination);
  const sonicFlushSync = destination.flushSync.bind(destination);
  const sonicEnd = destination.end.bind(destination);
  const linesThisTurn: string[] = [];
  let handOverScheduled = false;
  let lastHandOver = 0;

  const handOver = (): void => {
    handOverScheduled = false;
    if (linesThisTurn.length === 0) return;
    lastHandOver = Date.now();
    let chunk = '';
    let chunkBytes = 0;
    try {
      for (const line of linesThisTurn) {
        const bytes = Buffer.byteLength(line);
        if (chunkBytes > 0 && chunkBytes + bytes > options.maxWrite) {
          sonicWrite(chunk);
          chunk = '';
          chunkBytes = 0;
        }
        chunk += line;
        chunkBytes += bytes;
      }
      sonicWrite(chunk);
    } catch {
      // Destroyed (the process is ending): nothing left to write to.
    }
    linesThisTurn.length = 0;
  };

  destination.write = (line: string): boolean => {
    linesThisTurn.push(line);
    if (!handOverScheduled) {
      handOverScheduled = true;
      setImmediate(handOver);
    }
    return true;
  };
  destination.flush = (cb?: (err?: Error) => void): void => {
    handOver();
    sonicFlush(cb);
  };
  destination.flushSync = (): void => {
    handOver();
    sonicFlushSync();
  };
  destination.end = (): void => {
    handOver();
    sonicEnd();
  };

  const timer = setInterval(() => {
    if (Date.now() - lastHandOver > FLUSH_QUIET_MS) return;
    try {
      sonicFlush();
    } catch {
      // Destroyed (the process is ending): nothing left to write to.
    }
  }, FLUSH_INTERVAL_MS);
  timer.unref();
  destination.once('close', () => clearInterval(timer));
  return destination;
}

let stampMs = -1;
let stamp = '';
/**
 * pino's isoTime, formatted once per millisecond: at tens of thousands of lines per second most
 * lines share their millisecond with the line before.
 */
export function isoTimeOncePerMs(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}
