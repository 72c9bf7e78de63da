/**
 * A Writable end for stream pipelines that fills a BodySpool, honouring the spool's backpressure
 * (write() === false → wait for 'drain'). Used by content decoding and multipart part spooling.
 *
 * The sink never ends or disposes the spool: the caller owns it and calls end() after the
 * pipeline succeeded, dispose() on every path.
 */
import { Writable } from 'node:stream';
import type { BodySpool } from './spool.js';

export function createSpoolSink(spool: BodySpool): Writable {
  return new Writable({
    // One chunk queued at most: the spool is where bytes wait, not this stream.
    highWaterMark: 1,
    objectMode: false,
    write(chunk: Buffer, _enc, done) {
      writeToSpool(spool, chunk, done);
    },
  });
}

/** Writes one chunk; calls `done` at once, or once the spool drained, or with the spool's error. */
export function writeToSpool(spool: BodySpool, chunk: Buffer, done: (err?: Error | null) => void): void {
  let ok: boolean;
  try {
    ok = spool.write(chunk);
  } catch (err) {
    done(err as Error);
    return;
  }
  if (ok) {
    done();
    return;
  }
  // A failing temp file ends the wait too, with its error (BodySpool.onWritable).
  spool.onWritable(() => done(spool.failure));
}
