/**
 * The root pino logger. Connections and transactions get child loggers carrying their ids
 * (STYLE.md "Child loggers carry context"). User-identifying request headers are redacted.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { batchedStdout, isoTimeOncePerMs } from './log-destination.js';

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
    options.destination ?? batchedStdout({ minLength: 32_768, fileBlockBytes: 65_536, pipeBlockBytes: 65_536 }),
  );
}
