/**
 * Content-Encoding decoding for scanning (issue 5, "Content"). Scanners see the decoded bytes;
 * what is echoed or forwarded stays the original body, which this module never changes.
 *
 *   body.createReadStream() ─► [decoder ─► limiter] × codings, last applied first
 *                           ─► sha256 tap ─► BodySpool (memory, then a 0600 temp file)
 *
 * Contract of decodeContentEncoding(body, contentEncoding, options):
 * - Never rejects. Every result has dispose(); the caller calls it on every path (idempotent).
 *   It frees the decoded body or the partial one, never the input body.
 * - No coding, or only "identity": `{ ok: true, decoded: false, body: <the input> }`, nothing
 *   read. An empty body is the same: there is nothing to decode.
 * - Decoded: `{ ok: true, decoded: true, body, sha256 }`; `sha256` is of the decoded bytes,
 *   computed while spooling (the verdict cache key, with no second read).
 * - Failure: `{ ok: false, kind, reason, message, partial }`. `kind` is the ScanErrorKind the
 *   service's policy maps to allow or block (FAILURE_KINDS below). `partial` is what was decoded
 *   before the failure (null when nothing could be kept): for a corrupt, truncated or over-limit
 *   stream it is a prefix of what a lenient client would still render (best effort: output still
 *   buffered inside a failing decoder is lost), so the caller should scan it and the raw bytes;
 *   an infection found there blocks whatever the policy says about the failure, and finding
 *   nothing is not "clean": the failure's policy outcome stands.
 * - Input after the end of a stream is 'corrupt', at every stage of a stack: Node's zlib drops
 *   it silently, but a client that does not decode saves it, so the raw bytes must be scanned
 *   (browsers ignore it; the policy for 'unsupported' decides). The partial is then the whole
 *   decoded body. Concatenated gzip members are one body (RFC 1952 §2.2), and zero bytes after
 *   the last member are padding gzip(1) accepts; zeros followed by anything else are not. Other
 *   bytes right after a member are taken by gunzip for a next member and fail it: corrupt too.
 * - Limits are enforced while decoding, on every stage's output (an intermediate of stacked
 *   codings can be a bomb whose final output is small): past a bound the chain is destroyed at
 *   once, so memory stays at a few zlib chunks and disk at the bound.
 */
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ScanErrorKind } from '../backends/backend.js';
import { parseContentEncoding, type ContentCoding } from './content-decoding-header.js';
import { createDecoder, createOutputLimiter, OutputLimitError, type Decoder } from './content-decoding-streams.js';
import { createSha256Tap } from './hashing.js';
import { BodySpool, SpoolError, type SpoolOptions } from './spool.js';
import { createSpoolSink } from './spool-sink.js';
import type { SpooledBody } from './spooled-body.js';

export type { ContentCoding } from './content-decoding-header.js';
export { parseContentEncoding } from './content-decoding-header.js';

export interface ContentDecodingLimits {
  /** Most bytes any stage may produce, the final decoded body included. */
  readonly maxDecodedBytes: number;
  /** Most decoded bytes per encoded (original body) byte before the body counts as a bomb. */
  readonly maxRatio: number;
  /**
   * Output up to this many bytes is never a bomb, whatever the ratio: a small page of repeated
   * markup can compress 200:1 and is harmless.
   */
  readonly ratioGraceBytes: number;
  /** Most non-identity codings in one header; real servers use one. */
  readonly maxCodings: number;
}

/** Proposed defaults for the config keys (content.decode.*) the wiring adds. */
export const DEFAULT_CONTENT_DECODING_LIMITS: ContentDecodingLimits = Object.freeze({
  maxDecodedBytes: 512 * 1024 * 1024,
  maxRatio: 1000,
  ratioGraceBytes: 1024 * 1024,
  maxCodings: 3,
});

export type ContentDecodingFailure =
  /** Some stage's output passed max(ratioGraceBytes, maxRatio × body size). */
  | 'decompression-bomb'
  /** Some stage's output passed maxDecodedBytes at a plausible ratio. */
  | 'decoded-too-large'
  /** The decoder rejected the data (bad header, bad block, checksum), or data followed its end. */
  | 'corrupt'
  /** The stream ended before the coding's end marker. */
  | 'truncated'
  /** A coding we cannot undo (zstd, compress, a typo). */
  | 'unknown-encoding'
  | 'too-many-encodings'
  /** Reading the body or writing the decoded spool failed (ENOSPC, a disposed body). */
  | 'io-error'
  /** The caller's signal fired. */
  | 'aborted';

/**
 * The policy outcome of each failure. A bomb is 'too-large' for now so existing policy keys
 * apply; a dedicated ScanErrorKind 'decompression-bomb' (block by default, while merely large
 * files may be allowed) is proposed for backend.ts, and would be changed only here.
 */
export const FAILURE_KINDS: Readonly<Record<ContentDecodingFailure, ScanErrorKind>> = Object.freeze({
  'decompression-bomb': 'too-large',
  'decoded-too-large': 'too-large',
  corrupt: 'unsupported',
  truncated: 'unsupported',
  'unknown-encoding': 'unsupported',
  'too-many-encodings': 'unsupported',
  'io-error': 'backend-error',
  aborted: 'timeout',
});

export type ContentDecodingResult =
  | {
      readonly ok: true;
      /** False when there was nothing to undo and `body` is the input itself. */
      readonly decoded: boolean;
      /** The codings undone, in the order they had been applied. */
      readonly codings: readonly ContentCoding[];
      readonly body: SpooledBody;
      /** SHA-256 (hex) of the decoded body; null when not decoded (hash the input as spooled). */
      readonly sha256: string | null;
      dispose(): Promise<void>;
    }
  | {
      readonly ok: false;
      readonly kind: ScanErrorKind;
      readonly reason: ContentDecodingFailure;
      readonly message: string;
      readonly codings: readonly ContentCoding[];
      /** Bytes decoded before the failure; scan them too. Null when none could be kept. */
      readonly partial: SpooledBody | null;
      dispose(): Promise<void>;
    };

export interface ContentDecodingOptions {
  /** Where and how the decoded body is spooled. */
  readonly spool: SpoolOptions;
  readonly limits?: Partial<ContentDecodingLimits>;
  readonly signal?: AbortSignal;
}

const NOTHING_TO_DISPOSE = (): Promise<void> => Promise.resolve();

export async function decodeContentEncoding(
  body: SpooledBody,
  contentEncoding: string | null | undefined,
  options: ContentDecodingOptions,
): Promise<ContentDecodingResult> {
  const limits = { ...DEFAULT_CONTENT_DECODING_LIMITS, ...options.limits };
  const parsed = parseContentEncoding(contentEncoding);
  if (!parsed.ok) {
    return failure('unknown-encoding', `unsupported Content-Encoding "${parsed.coding}"`, [], null, NOTHING_TO_DISPOSE);
  }
  const codings = parsed.codings;
  if (codings.length > limits.maxCodings) {
    const message = `${codings.length} content codings, more than ${limits.maxCodings}`;
    return failure('too-many-encodings', message, codings, null, NOTHING_TO_DISPOSE);
  }
  if (codings.length === 0 || body.size === 0) {
    return { ok: true, decoded: false, codings, body, sha256: null, dispose: NOTHING_TO_DISPOSE };
  }
  return decodeThroughSpool(body, codings, limits, options);
}

async function decodeThroughSpool(
  body: SpooledBody,
  codings: readonly ContentCoding[],
  limits: ContentDecodingLimits,
  options: ContentDecodingOptions,
): Promise<ContentDecodingResult> {
  const spool = new BodySpool(options.spool);
  const dispose = (): Promise<void> => spool.dispose();
  if (options.signal?.aborted) {
    return failure('aborted', 'aborted before decoding', codings, null, dispose);
  }
  // The first 'error' any stage emits names the stage that failed; pipeline() then destroys the
  // others with that same error, which would otherwise look like theirs.
  let origin: 'source' | 'decoder' | 'other' | null = null;
  const mark = (stream: Readable | Writable, role: 'source' | 'decoder' | 'other'): void => {
    stream.once('error', () => {
      origin ??= role;
    });
  };

  let source: Readable;
  try {
    source = body.createReadStream();
  } catch (err) {
    return failure('io-error', `cannot read the body: ${(err as Error).message}`, codings, null, dispose);
  }
  mark(source, 'source');
  const ratioBytes = Math.max(limits.ratioGraceBytes, limits.maxRatio * body.size);
  const stages: Transform[] = [];
  const decoders: [ContentCoding, Decoder][] = [];
  // Applied first is listed first (RFC 9110 §8.4), so undo from the end.
  for (const coding of [...codings].reverse()) {
    const decoder = createDecoder(coding);
    mark(decoder, 'decoder');
    decoders.push([coding, decoder]);
    const limiter = createOutputLimiter({ maxBytes: limits.maxDecodedBytes, ratioBytes, describe: `${coding} decoding` });
    mark(limiter, 'other');
    stages.push(decoder, limiter);
  }
  const tap = createSha256Tap();
  const sink = createSpoolSink(spool);
  mark(sink, 'other');

  try {
    await pipeline([source, ...stages, tap, sink], options.signal ? { signal: options.signal } : {});
    const decoded = await spool.end();
    const trailing = trailingMessage(decoders);
    // Every stage finished its stream, so `decoded` is whole: the partial is all of it.
    if (trailing !== null) return failure('corrupt', trailing, codings, decoded, dispose);
    return { ok: true, decoded: true, codings, body: decoded, sha256: tap.hex(), dispose };
  } catch (err) {
    const [reason, message] = classify(err, origin, options.signal);
    const partial = reason === 'io-error' || reason === 'aborted' ? null : await endQuietly(spool);
    return failure(reason, message, codings, partial, dispose);
  }
}

function classify(err: unknown, origin: string | null, signal: AbortSignal | undefined): [ContentDecodingFailure, string] {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof OutputLimitError) return [err.reason, message];
  if (signal?.aborted) return ['aborted', 'decoding aborted'];
  if (err instanceof SpoolError || origin === 'source' || origin === 'other') return ['io-error', message];
  // zlib and brotli both say Z_BUF_ERROR "unexpected end of file" when input stops early.
  if ((err as NodeJS.ErrnoException).code === 'Z_BUF_ERROR') return ['truncated', `truncated stream: ${message}`];
  return ['corrupt', `corrupt stream: ${message}`];
}

/** The first stage (outermost coding first) that was given input after its stream's end. */
function trailingMessage(decoders: readonly [ContentCoding, Decoder][]): string | null {
  for (const [coding, decoder] of decoders) {
    const t = decoder.trailing;
    if (t !== null) return `corrupt stream: ${t.bytes} bytes of trailing data after the end of the ${coding} stream (at byte ${t.offset} of its input)`;
  }
  return null;
}

/** What the spool holds so far, or null when it cannot be finished (its file failed). */
async function endQuietly(spool: BodySpool): Promise<SpooledBody | null> {
  try {
    return await spool.end();
  } catch {
    return null;
  }
}

function failure(
  reason: ContentDecodingFailure,
  message: string,
  codings: readonly ContentCoding[],
  partial: SpooledBody | null,
  dispose: () => Promise<void>,
): ContentDecodingResult {
  return { ok: false, kind: FAILURE_KINDS[reason], reason, message, codings, partial, dispose };
}
