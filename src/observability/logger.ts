/**
 * The root pino logger. Connections and transactions get child loggers carrying their ids
 * (STYLE.md "Child loggers carry context"). User-identifying request headers are redacted.
 * setLogLevel changes the level of a root and of every child made from it (a reload).
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { FILE_BLOCK_BYTES, FILE_BLOCK_MIN_FILL, batchedStdout, isoTimeOncePerMs } from './log-destination.js';

export type { Logger };

export interface LoggerOptions {
  readonly level: string;
  /** Where lines go; stdout by default. Tests pass a stream to read the lines back. */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'icap-bridge' },
      timestamp: isoTimeOncePerMs,
      redact: { paths: ['headers.authorization', 'headers["proxy-authorization"]', 'headers.cookie'], censor: '[redacted]' },
    },
    options.destination ?? batchedStdout({ minLength: FILE_BLOCK_MIN_FILL, fileBlockBytes: FILE_BLOCK_BYTES, pipeBlockBytes: 65_536 }),
  );
}

/**
 * Sets `level` on `root` (a logger createLogger returned) and so on every logger made from it; a
 * reload calls it with logging.level. A child made without a level of its own, which is every one
 * the server makes (a connection's, a transaction's, a worker's pid-bound logger), reads its level
 * through its parent in pino 10 (test/observability/log-level-reload.test.ts holds it to that), so
 * nothing is kept per connection. Never give a child `{ level }`: it would keep that level.
 */
export function setLogLevel(root: Logger, level: string): void {
  root.level = level;
}

/** How long a stopping process waits for its last log lines to be written. */
export const LOG_FLUSH_TIMEOUT_MS = 2000;

/**
 * Resolves once every line logged so far is written (the destination writes blocks on the thread
 * pool, log-destination.ts), or after `timeoutMs` when stdout does not drain (a reader that stopped
 * reading). A process about to exit waits for this: process.exit does not wait for the thread pool.
 */
export function flushLogs(logger: Logger, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    logger.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
