/**
 * Log destinations for the processes of a cluster. All processes share one stdout.
 *
 * A regular file shared by the processes (one open file description, one offset) takes each
 * write(2) whole, whatever its size, so there blocks stay large and nothing below applies.
 *
 * A pipe (systemd's journal, a container runtime, a test): one write(2) of at most PIPE_BUF bytes is
 * atomic, a longer one is not: once the pipe is full the writer sleeps mid-write and another
 * process's write lands inside its line. Blocks of whole lines capped at PIPE_BUF keep every line
 * of up to 4 KiB whole. A longer line (an access line with an 8 KB URL) cannot be made atomic, so
 * it is written while nobody else writes:
 *
 *   worker ──log-line──► primary          the line, over IPC, instead of to stdout
 *          ◄─log-pause── primary          to every worker (and the primary pauses itself)
 *          ──log-paused─►                 once its write in flight, if any, is done
 *                        primary          writes the long lines gathered so far, in one write
 *          ◄─log-resume─                  every process writes its held blocks again
 *
 * Why this and not the others weighed:
 * - The primary writing long lines without pausing anyone would not help: its write of more than
 *   PIPE_BUF bytes is as open to a worker's 4 KiB write landing inside it as a worker's own.
 * - Sending every line to the primary (one writer) would make every block cross IPC (JSON
 *   encoding, another copy, the primary's CPU on a 2-core node) for the sake of the rare long line;
 *   here a short line costs what it did (the length check it already had).
 * - Truncating the URL to fit 4 KiB loses what an operator may be looking for (Squid accepts and
 *   logs URLs up to MAX_URL, 8 KiB).
 * A pause holds writes, not logging: lines keep gathering in each process's queue (past its cap they
 * are dropped and counted, as with any slow reader), so no event loop waits. A worker's long line may
 * land out of order with the short lines it logged around it.
 */
import {
  FILE_BLOCK_BYTES,
  FILE_BLOCK_MIN_FILL,
  batchedStdout,
  droppedLinesReport,
  type LogDestination,
  type PausableLogDestination,
} from '../observability/log-destination.js';
import { isToWorker, type ToPrimary } from './messages.js';

/** POSIX PIPE_BUF on Linux. */
const PIPE_BUF = 4096;
/**
 * Long lines the primary holds while it waits for a window; past this they are dropped, counted in
 * `dropped`, and named by a warning line once the windows have caught up, as a queue's drops are
 * (log-destination.ts), with the same message.
 */
const MAX_PENDING_LONG_CHARS = 16 * 1024 * 1024;

function destination(longLine: (line: string, done: () => void) => void, fd?: number): PausableLogDestination {
  return batchedStdout({ minLength: FILE_BLOCK_MIN_FILL, fileBlockBytes: FILE_BLOCK_BYTES, pipeBlockBytes: PIPE_BUF, longLine, ...(fd !== undefined && { fd }) });
}


/**
 * A worker's destination. Made before the worker says hello: from then on the primary may ask it
 * to pause, and a message nobody listens for is lost.
 */
export function workerLogDestination(): LogDestination {
  const send = (message: ToPrimary, cb: (err: Error | null) => void): void => {
    if (!process.connected || process.send === undefined) return cb(new Error('no IPC channel'));
    process.send(message, undefined, undefined, cb);
  };
  const out: PausableLogDestination = destination((line, done) =>
    send({ type: 'icap-bridge:log-line', line }, (err) => {
      // The primary is gone (this worker is about to end): written here rather than lost.
      if (err) out.writeAlone(line);
      done();
    }),
  );
  process.on('message', (message: unknown) => {
    if (!isToWorker(message)) return;
    if (message.type === 'icap-bridge:log-pause') {
      const { requestId } = message;
      out.pause(() => send({ type: 'icap-bridge:log-paused', requestId }, () => {}));
    } else if (message.type === 'icap-bridge:log-resume') {
      out.resume();
    }
  });
  return out;
}

export interface PrimaryLogDestination extends LogDestination {
  /** A long line a worker sent (log-line). */
  writeLong(line: string): void;
}

/**
 * The primary's destination, and the writer of every long line. `pauseWorkers` asks each worker
 * that may write to pause and resolves, once all have (or exited), with the function that resumes
 * them. `fd`: stdout unless a test says otherwise.
 */
export function primaryLogDestination(pauseWorkers: () => Promise<() => void>, fd?: number): PrimaryLogDestination {
  let pending: { line: string; done?: () => void }[] = [];
  let pendingChars = 0;
  let droppedLong = 0;
  let droppedLongSinceReport = 0;
  let writing = false;
  const idleWaiters: (() => void)[] = [];

  /** Once nothing waits for a window: the count goes out as a short line, through the ordinary blocks. */
  const reportDropped = (): void => {
    if (droppedLongSinceReport === 0) return;
    out.write(droppedLinesReport(droppedLongSinceReport));
    droppedLongSinceReport = 0;
  };

  const take = (line: string, done?: () => void): void => {
    if (pendingChars + line.length > MAX_PENDING_LONG_CHARS) {
      droppedLong++;
      droppedLongSinceReport++;
      done?.();
      // A line too long on its own, with no window to wait for: nothing else would report it.
      if (!writing) reportDropped();
      return;
    }
    pending.push(done === undefined ? { line } : { line, done });
    pendingChars += line.length;
    if (!writing) void writeWindows();
  };
  const out = destination(take, fd);

  /** One window per batch: the lines that came while one was written go in the next. */
  async function writeWindows(): Promise<void> {
    writing = true;
    while (pending.length > 0) {
      const resumeWorkers = await pauseWorkers();
      await new Promise<void>((resolve) => out.pause(resolve));
      const batch = pending;
      pending = [];
      pendingChars = 0;
      await new Promise<void>((resolve) => out.writeWhilePaused(Buffer.from(batch.map((p) => p.line).join('')), resolve));
      out.resume();
      resumeWorkers();
      for (const p of batch) p.done?.();
    }
    writing = false;
    reportDropped();
    for (const waiter of idleWaiters.splice(0)) waiter();
  }

  const flush = (cb?: (err?: Error) => void): void => {
    if (!writing) return out.flush(cb);
    idleWaiters.push(() => out.flush(cb));
  };

  return {
    write: (line) => out.write(line),
    writeLong: (line) => take(line),
    flush,
    flushSync() {
      // The process is exiting: what still waits for a window is written as it stands.
      for (const p of pending.splice(0)) {
        out.writeAlone(p.line);
        p.done?.();
      }
      pendingChars = 0;
      reportDropped();
      out.flushSync();
    },
    async end() {
      await new Promise<void>((resolve) => flush(() => resolve()));
      await out.end();
    },
    get dropped(): number {
      return out.dropped + droppedLong;
    },
  };
}
