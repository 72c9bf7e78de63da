/**
 * Writers that fill a BodySpool, honouring the spool's backpressure (write() === false → wait
 * until it takes writes again; STYLE.md "Respect write() === false"):
 *
 * - createSpoolSink: a Writable end for stream pipelines (content decoding);
 * - writeToSpool: one chunk, with a callback (multipart part spooling);
 * - copyToSpool: a whole source under an AbortSignal and a byte limit (downloads, e.g.
 *   MetaDefender's sanitized file).
 *
 * None of them ends or disposes the spool: the caller owns it and calls end() after the copy
 * succeeded, dispose() on every path.
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

/**
 * Copies `source` into `spool`. Resolves true when the source ended; false as soon as more than
 * `maxBytes` arrived (default: no limit) — the iteration stops there, which destroys a Readable
 * source, and the spool holds a part the caller disposes. Rejects with the spool's SpoolError
 * (write() throws it, or it ended a wait), with the signal's reason when the signal fires during
 * a wait, or with the source's own error.
 */
export async function copyToSpool(
  source: AsyncIterable<Buffer>,
  spool: BodySpool,
  options: { readonly signal: AbortSignal; readonly maxBytes?: number },
): Promise<boolean> {
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > maxBytes) return false;
    if (!spool.write(chunk)) await untilWritable(spool, options.signal);
    if (spool.failure) throw spool.failure;
  }
  return true;
}

/**
 * Until `spool` takes writes again or `signal` fires. Not `once('drain')`: a temp file that fails
 * (ENOSPC, EFBIG, EIO) never drains, and the wait would outlive the caller's deadline and keep
 * the temp file (spool.ts, onWritable). Rejects with the signal's reason on abort.
 */
export function untilWritable(spool: Pick<BodySpool, 'onWritable'>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason ?? new Error('aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    spool.onWritable(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
