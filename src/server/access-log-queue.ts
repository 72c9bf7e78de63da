/**
 * Access lines written after this turn's answers are sent, not before.
 *
 * While answers are held until the end of the loop turn (write-coalescer.ts), every access line
 * built during the turn delayed every answer of the turn: ~2 µs of the event loop per line
 * (building and encoding it, BENCHMARKS.md Session 20) that the clients waited through with nothing
 * to do. Built after the flush, the lines overlap with the clients' own work on the other core. In
 * one process alternating between the two (bench/mode-cycle.ts), REQMOD null-body at 16 connections
 * was faster in 47 of 72 rounds (medians of 5 tables 0.95–1.20, 4 of them above 1), OPTIONS and
 * RESPMOD 4 KiB in 10 and 8 of 12; at 64 connections in 29 of 56, the noise (BENCHMARKS.md, Session 21).
 *
 * With a single connection its answer is not held, so its line is written at once, as before.
 * A line's `time` is when it is written, at most one turn after its `duration_ms` ended; lines
 * keep their order among themselves. A stopping server drains what is left before its last flush.
 */
import { writeAccessLog, type AccessLogFormat, type AccessRecord } from '../observability/access-log.js';
import type { Logger } from '../observability/logger.js';
import { afterAnswersSent, worthCoalescing } from './write-coalescer.js';

export interface AccessLogQueue {
  /** Logs `record` now, or after this turn's answers are sent while answers are held. */
  log(record: AccessRecord): void;
  /** Writes every line still waiting (a stopping server, before it flushes the log). */
  drain(): void;
}

/**
 * `enabled` is read when a record is logged (logging.access_log of the configuration then), `format`
 * when its line is written (logging.access_log_format).
 */
export function createAccessLogQueue(
  logger: Logger,
  enabled: () => boolean,
  format: () => AccessLogFormat = () => 'json',
): AccessLogQueue {
  let waiting: AccessRecord[] = [];
  let drainScheduled = false;

  function drain(): void {
    drainScheduled = false;
    const records = waiting;
    waiting = [];
    const lineFormat = format();
    for (const record of records) {
      try {
        writeAccessLog(logger, record, true, lineFormat);
      } catch {
        // A destination that throws (none of ours does) loses this line, not the process: the
        // drain runs in the loop's check phase, where a throw would end it.
      }
    }
  }

  return {
    log(record) {
      if (!enabled()) return;
      if (!worthCoalescing()) {
        writeAccessLog(logger, record, true, format());
        return;
      }
      waiting.push(record);
      if (!drainScheduled) {
        drainScheduled = true;
        afterAnswersSent(drain);
      }
    },
    drain,
  };
}
