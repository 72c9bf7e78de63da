/**
 * A logger (createLogger, as the server makes it) whose output is kept as lines, for tests that
 * read what operators would: access lines in either layout, and pino's own lines.
 */
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';

export function captureLogLines(level = 'info'): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}
