/**
 * Where log lines go by default: stdout, gathered into blocks of bytes and written a block at a time.
 *
 * Each line pino hands over (and each access line, access-line.ts) is encoded straight into the
 * current block (one utf8Write, no string kept). A block is written once it holds `minLength` bytes,
 * when the next line would not fit, or at the latest FLUSH_INTERVAL_MS after its first line. At tens
 * of thousands of access lines per second this is what the logging costs: pino's SonicBoom
 * concatenated the lines into strings, measured them with Buffer.byteLength, flattened and encoded
 * them again for each write(2) and handed every write to the libuv thread pool; with this writer a
 * REQMOD null-body at 64 connections went from 36.5 to 29.8 µs of CPU per request (BENCHMARKS.md,
 * Session 6).
 *
 * Blocks are written one at a time on the thread pool, in order, whatever stdout is: the event loop
 * only hands them over. (Until Session 12 a regular file was written with write(2) on the event loop:
 * ≈ 0.7 µs of a null-body REQMOD's event loop per request, which the second core can take instead.)
 * Blocks waiting behind the write in flight are capped at MAX_QUEUED_BYTES. Past that:
 * - a regular file (checked once, by fstat) is written synchronously, the queued blocks first: the
 *   disk is that far behind, so the event loop waits for it rather than lose access lines. Lines stay
 *   whole and in order, but for the block still in flight, which may land after them.
 * - a pipe, socket or terminal (a container runtime, journald): lines are dropped and counted, so a
 *   slow reader never stalls the event loop, and a line saying how many were lost is written once the
 *   reader catches up. A write(2) of at most PIPE_BUF bytes to a pipe is atomic: `pipeBlockBytes`
 *   (PIPE_BUF in a cluster, whose processes share stdout) keeps whole lines from interleaving with
 *   another process's. A line longer than that cannot be written atomically: in a cluster it goes
 *   to `longLine` instead, and is written by the primary while every process holds its writes
 *   (pause / writeWhilePaused / resume; src/cluster/log-destination.ts).
 *
 * flush(cb) calls back once everything handed over is written (a stopping server waits for it).
 * flushSync() (at exit, and pino.final) writes whatever is pending synchronously. A block already
 * handed to the thread pool may then land after those lines: it cannot be recalled.
 */
import { fstatSync, write, writeSync } from 'node:fs';

/** The longest a line waits in a block on a quiet server. */
const FLUSH_INTERVAL_MS = 25;
/**
 * A regular file's block, and how full it gets before it is written. Each hand-over to the thread
 * pool costs the event loop far more than its JavaScript: waking a pool thread and being woken for
 * its completion are cross-core wake-ups, dear in a VM. With 64 KiB blocks written at 32 KiB (a
 * write every ~68 access lines) a null-body REQMOD at 16 connections spent ~1 µs more per request
 * than with these (BENCHMARKS.md, Session 13). At 60 k access lines per second (~480 bytes each) a
 * block goes every ~9 ms; a quieter server's goes when the 25 ms timer runs out. The memory is a
 * block, the queue and SPARE_BLOCKS spares. A pipe's block (pipeBlockBytes, smaller) is written
 * when the next line would not fit in it, or by the timer: minLength is capped at the block size.
 */
export const FILE_BLOCK_BYTES = 524_288;
export const FILE_BLOCK_MIN_FILL = 262_144;
/** Blocks waiting behind the write in flight, at most; past this a pipe drops lines (counted), a file is written synchronously. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** A full pipe: try again after this long. */
const EAGAIN_RETRY_MS = 10;
/** Written blocks kept for reuse. */
const SPARE_BLOCKS = 4;

export interface BatchedDestinationOptions {
  /** Bytes gathered before a write (at most the block size). */
  readonly minLength: number;
  /** Block size, the largest single write of whole lines, when stdout is a regular file. */
  readonly fileBlockBytes: number;
  /** The same when stdout is a pipe, socket or terminal (PIPE_BUF where processes share it). */
  readonly pipeBlockBytes: number;
  /** File descriptor to write to: stdout unless a test says otherwise. */
  readonly fd?: number;
  /** Bytes waiting for a pipe reader before lines are dropped; MAX_QUEUED_BYTES unless a test says otherwise. */
  readonly maxQueuedBytes?: number;
  /**
   * Not a regular file: a line of more than `pipeBlockBytes` bytes goes here instead of being written
   * (a cluster, src/cluster/log-destination.ts). `done` once it is out of this process's hands;
   * flush waits for that.
   */
  readonly longLine?: (line: string, done: () => void) => void;
}

export interface LogDestination {
  /** pino's DestinationStream: takes one whole line. Always returns true (nothing to wait for). */
  write(line: string): boolean;
  /** Writes what is pending; `cb` once every block handed over so far is written. */
  flush(cb?: (err?: Error) => void): void;
  /** Writes what is pending before returning (the process is about to exit). */
  flushSync(): void;
  /** Flushes, stops the interval timer; resolves once everything is written. The fd stays open. */
  end(): Promise<void>;
  /** Lines dropped because a pipe reader was too slow (see the file comment). */
  readonly dropped: number;
}

/** What a cluster needs to write a long line with no other write in between (src/cluster/log-destination.ts). */
export interface PausableLogDestination extends LogDestination {
  /** Stops writing blocks (lines still gather, up to the queue cap); `onIdle` once no write is in flight. */
  pause(onIdle: () => void): void;
  /** Writes again what gathered meanwhile. */
  resume(): void;
  /** Paused and idle: writes `data` (any length) on the thread pool, `cb` once it is written. */
  writeWhilePaused(data: Buffer, cb: () => void): void;
  /** Queues `line` as a block of its own, whatever its length, bypassing `longLine` (its last resort). */
  writeAlone(line: string): void;
}

function isRegularFile(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}

export function batchedStdout(options: BatchedDestinationOptions): PausableLogDestination {
  const fd = options.fd ?? 1;
  const toFile = isRegularFile(fd);
  const blockBytes = toFile ? options.fileBlockBytes : options.pipeBlockBytes;
  const minLength = Math.min(options.minLength, blockBytes);
  const maxQueuedBytes = options.maxQueuedBytes ?? MAX_QUEUED_BYTES;
  const longLine = toFile ? undefined : options.longLine;
  const spares: Buffer[] = [];
  /** Memory of the blocks this destination allocated: only those are reused (never a pooled Buffer.from). */
  const ownBlocks = new WeakSet<ArrayBufferLike>();
  const newBlock = (): Buffer => {
    const spare = spares.pop();
    if (spare !== undefined) return spare;
    const fresh = Buffer.allocUnsafeSlow(blockBytes);
    ownBlocks.add(fresh.buffer);
    return fresh;
  };
  let block = newBlock();
  let used = 0;
  let timer: NodeJS.Timeout | null = null;
  // Asynchronous path only: blocks waiting for the write in flight.
  const queue: Buffer[] = [];
  let queuedBytes = 0;
  let writing = false;
  /** pause(): queued blocks wait; `pauseWaiters` are called once the write in flight is done. */
  let paused = false;
  const pauseWaiters: (() => void)[] = [];
  /** Long lines given to `longLine` and not done yet. */
  let handedOut = 0;
  let dropped = 0;
  let droppedSinceReport = 0;
  const idleWaiters: ((err?: Error) => void)[] = [];

  const recycle = (written: Buffer): void => {
    if (ownBlocks.has(written.buffer) && spares.length < SPARE_BLOCKS) spares.push(Buffer.from(written.buffer, 0, blockBytes));
  };

  /** Synchronous write of a whole buffer; a broken stdout loses it (nothing else could be done). */
  const writeNow = (data: Buffer): void => {
    let offset = 0;
    let busyRetries = 0;
    while (offset < data.length) {
      try {
        offset += writeSync(fd, data, offset, data.length - offset);
      } catch (err) {
        // A non-blocking pipe at exit: a bounded busy retry, then give up on the rest.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && busyRetries++ < 1000) continue;
        return;
      }
    }
  };

  const settleWaiters = (): void => {
    if (writing || queue.length > 0 || handedOut > 0) return;
    for (const waiter of idleWaiters.splice(0)) waiter();
  };

  /** Writes `data` on the thread pool, retrying a full pipe; `done` once written (or stdout is gone: EPIPE, EBADF). */
  const writeAsync = (data: Buffer, done: () => void): void => {
    writing = true;
    const writeFrom = (offset: number): void => {
      write(fd, data, offset, data.length - offset, null, (err, n) => {
        if (err && err.code === 'EAGAIN') {
          setTimeout(() => writeFrom(offset), EAGAIN_RETRY_MS).unref();
          return;
        }
        if (!err && offset + n < data.length) {
          writeFrom(offset + n);
          return;
        }
        writing = false;
        done();
        if (paused) for (const waiter of pauseWaiters.splice(0)) waiter();
      });
    };
    writeFrom(0);
  };

  const writeNext = (): void => {
    if (writing || paused) return;
    const data = queue.shift();
    if (data === undefined) {
      settleWaiters();
      return;
    }
    writeAsync(data, () => {
      queuedBytes -= data.length;
      recycle(data);
      writeNext();
    });
  };

  /** The blocks waiting behind the write in flight, written now, in order. */
  const writeQueuedNow = (): void => {
    for (const data of queue.splice(0)) {
      queuedBytes -= data.length;
      writeNow(data);
      recycle(data);
    }
  };

  const handOver = (data: Buffer): void => {
    if (queuedBytes + data.length > maxQueuedBytes) {
      if (toFile) {
        // The disk is that far behind: what waits, then this block, written before going on.
        writeQueuedNow();
        writeNow(data);
        recycle(data);
      } else {
        const lines = countLines(data);
        dropped += lines;
        droppedSinceReport += lines;
      }
      return;
    }
    if (droppedSinceReport > 0 && queuedBytes === 0) {
      const report = droppedLinesReport(droppedSinceReport);
      droppedSinceReport = 0;
      enqueue(Buffer.from(report));
    }
    enqueue(data);
  };

  const enqueue = (data: Buffer): void => {
    queue.push(data);
    queuedBytes += data.length;
    writeNext();
  };

  /** The current block goes out (or into the queue); a fresh one takes the next lines. */
  const seal = (): void => {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (used === 0) return;
    const full = block.subarray(0, used);
    block = newBlock();
    used = 0;
    handOver(full);
  };

  const flush = (cb?: (err?: Error) => void): void => {
    seal();
    if (cb === undefined) return;
    idleWaiters.push(cb);
    settleWaiters();
  };

  /** Everything not handed to the thread pool yet, written before returning: queued blocks, then the current one. */
  const flushSync = (): void => {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    writeQueuedNow();
    if (used > 0) {
      writeNow(block.subarray(0, used));
      used = 0;
    }
  };
  // pino registers SonicBoom for a last flushSync at exit; this destination registers itself.
  pendingAtExit.add(flushSync);

  const lineDone = (): void => {
    handedOut--;
    settleWaiters();
  };

  return {
    write(line: string): boolean {
      // utf8 needs at most 3 bytes per UTF-16 unit: check with that bound, no byteLength scan.
      if (line.length * 3 > blockBytes - used) {
        seal();
        if (line.length * 3 > blockBytes) {
          // Perhaps longer than a block: written on its own, or, longer than one atomic write to a
          // pipe shared with other processes, given to the cluster (longLine).
          const data = Buffer.from(line);
          if (longLine !== undefined && data.length > blockBytes) {
            handedOut++;
            longLine(line, lineDone);
          } else {
            handOver(data);
          }
          return true;
        }
      }
      if (used === 0 && timer === null) {
        timer = setTimeout(seal, FLUSH_INTERVAL_MS);
        timer.unref();
      }
      used += block.write(line, used); // utf8
      if (used >= minLength) seal();
      return true;
    },
    flush,
    flushSync,
    end(): Promise<void> {
      pendingAtExit.delete(flushSync);
      return new Promise((resolve) => flush(() => resolve()));
    },
    get dropped(): number {
      return dropped;
    },
    pause(onIdle: () => void): void {
      paused = true;
      if (writing) pauseWaiters.push(onIdle);
      else onIdle();
    },
    resume(): void {
      paused = false;
      writeNext();
    },
    writeWhilePaused(data: Buffer, cb: () => void): void {
      if (!paused || writing) throw new Error('writeWhilePaused: pause() first and wait for onIdle');
      writeAsync(data, cb);
    },
    writeAlone(line: string): void {
      seal();
      handOver(Buffer.from(line));
    },
  };
}

/** flushSync of every destination not ended yet, run once when the process exits. */
const pendingAtExit = new Set<() => void>();
process.once('exit', () => {
  for (const flushSync of pendingAtExit) flushSync();
});

function countLines(data: Buffer): number {
  let lines = 0;
  for (let at = data.indexOf(10); at !== -1; at = data.indexOf(10, at + 1)) lines++;
  return lines;
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

/** The warning line for `count` dropped lines, written raw (the logger may be what is stuck). */
export function droppedLinesReport(count: number): string {
  return `{"level":40,"time":"${new Date().toISOString()}","service":"icap-bridge","dropped_lines":${count},"msg":"log lines dropped: stdout was not read fast enough"}\n`;
}
