/**
 * Where an upstream exchange reads the body from: the spool (complete, replayable at will) or
 * the live body of a streaming scan (live-body.ts). An exchange pulls chunks; a retry on another
 * endpoint opens a fresh reader from the first byte, when the source can still replay.
 */
import type { SpooledBody } from '../../pipeline/spooled-body.js';

export interface BodyReader {
  /** The next chunk, or null at the end of the body. Rejects when the body cannot be read. */
  next(): Promise<Buffer | null>;
  /** Stops reading; idempotent. */
  close(): void;
}

export interface BodySource {
  /** A reader from the first byte; null when bytes already read can no longer be replayed. */
  open(): BodyReader | null;
  /** The body's size when known before reading (a spooled body). */
  readonly size: number | null;
  /** open() would give a reader now. */
  readonly replayable: boolean;
}

export function spooledSource(body: SpooledBody): BodySource {
  return {
    size: body.size,
    replayable: true,
    open(): BodyReader {
      const stream = body.createReadStream();
      const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      let closed = false;
      return {
        async next() {
          if (closed) return null;
          const step = await iterator.next();
          return step.done === true ? null : step.value;
        },
        close() {
          if (closed) return;
          closed = true;
          stream.destroy();
        },
      };
    },
  };
}
