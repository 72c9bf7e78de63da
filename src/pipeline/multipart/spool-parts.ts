/**
 * Splits a spooled multipart/form-data body into parts, each spooled on its own so it can be
 * scanned as its own file with its own name (issue 5: "binary parts are not missed").
 *
 * Contract of spoolMultipartParts(body, contentType, options):
 * - Never rejects. Every result has dispose(), which removes every part's temp file; the caller
 *   calls it on every path (idempotent). The input body is only read, never changed: what is
 *   echoed or forwarded stays the original bytes.
 * - Every part is returned, text fields included, in body order: a "text" field can carry any
 *   bytes, and an application may store it as a file. `isFile` says whether the client presented
 *   it as a file (a filename, or a media type other than text/plain), for logs and naming only.
 *   A part that is itself multipart/mixed (RFC 7578 §4.3, deprecated; RFC 2388 used it for
 *   several files in one field) is replaced by its inner parts, one level deep; deeper nesting is
 *   scanned as one opaque part.
 * - Memory: all parts together keep at most `memoryBudgetBytes` in memory (default: one spool's
 *   `memoryBytes`); past that, parts go straight to temp files. The body is read in 64 KiB
 *   pieces with the spools' backpressure honoured.
 * - Failure: `{ ok: false, kind, reason, message, parts }`; `kind` is the ScanErrorKind the policy
 *   maps. `parts` holds what was split off before the failure (the part cut short by a missing
 *   close delimiter has `complete: false`) so the caller can still scan it; an infection there
 *   blocks whatever the policy says about the failure. The raw body should be scanned too.
 * - Each part carries its SHA-256, computed while spooling (the verdict cache key).
 */
import type { Readable } from 'node:stream';
import type { ScanErrorKind } from '../../backends/backend.js';
import { Sha256Accumulator } from '../hashing.js';
import { BodySpool, type SpoolOptions } from '../spool.js';
import { writeToSpool } from '../spool-sink.js';
import type { SpooledBody } from '../spooled-body.js';
import { MultipartError, type MultipartErrorCode } from './multipart-error.js';
import { MultipartParser, type MultipartEvent, type MultipartParserLimits } from './multipart-parser.js';
import { boundaryFromContentType, checkBoundary, type PartHeaders } from './part-headers.js';

export interface MultipartPart {
  /** 0-based position among the returned parts. */
  readonly index: number;
  /** The form field (for an inner part of nested multipart/mixed: the outer part's field). */
  readonly fieldName: string | null;
  readonly fileName: string | null;
  /** Media type without parameters, lower-cased; `text/plain` when the part sent none. */
  readonly mediaType: string;
  readonly isFile: boolean;
  readonly headers: PartHeaders;
  readonly body: SpooledBody;
  /** SHA-256 (hex) of the part's content. */
  readonly sha256: string;
  /** False only for the last part of a failed result, cut off mid-content. */
  readonly complete: boolean;
}

export interface MultipartLimits extends MultipartParserLimits {
  /** Most bytes all parts together keep in memory before they go to temp files. */
  readonly memoryBudgetBytes?: number;
}

/** Proposed defaults for the config keys (content.multipart.*) the wiring adds. */
export const DEFAULT_MULTIPART_LIMITS: MultipartParserLimits = Object.freeze({
  maxParts: 500,
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 32,
});

export type MultipartFailure = MultipartErrorCode | 'io-error' | 'aborted';

/** The policy outcome of each failure. */
export const MULTIPART_FAILURE_KINDS: Readonly<Record<MultipartFailure, ScanErrorKind>> = Object.freeze({
  'no-boundary': 'unsupported',
  malformed: 'unsupported',
  truncated: 'unsupported',
  'too-many-parts': 'too-large',
  'part-header-too-large': 'too-large',
  'io-error': 'backend-error',
  aborted: 'timeout',
});

export type MultipartResult =
  | { readonly ok: true; readonly parts: readonly MultipartPart[]; dispose(): Promise<void> }
  | {
      readonly ok: false;
      readonly kind: ScanErrorKind;
      readonly reason: MultipartFailure;
      readonly message: string;
      readonly parts: readonly MultipartPart[];
      dispose(): Promise<void>;
    };

export interface MultipartOptions {
  /** Per part: memory bound and temp directory, as for the body spool. */
  readonly spool: SpoolOptions;
  readonly limits?: Partial<MultipartLimits>;
  readonly signal?: AbortSignal;
}

/** The name a block or a log line gives a part: its file name, else its field, else its position. */
export function partLabel(part: Pick<MultipartPart, 'index' | 'fieldName' | 'fileName'>): string {
  if (part.fileName) return part.fileName;
  if (part.fieldName) return `field ${part.fieldName}`;
  return `part ${part.index + 1}`;
}

/** Whether the client presented a part as a file (RFC 7578 §4.2, §4.4). */
export function looksLikeFile(headers: PartHeaders): boolean {
  return headers.fileName !== null || headers.mediaType !== 'text/plain';
}

/** A multipart/mixed part with a usable boundary is split; any other part is scanned whole. */
function isNestedMultipart(headers: PartHeaders): boolean {
  if (headers.mediaType !== 'multipart/mixed' || headers.boundary === null || headers.boundary === '') return false;
  try {
    checkBoundary(headers.boundary);
    return true;
  } catch {
    return false;
  }
}

interface OpenPart {
  readonly headers: PartHeaders;
  readonly fieldName: string | null;
  readonly spool: BodySpool;
  readonly hash: Sha256Accumulator;
}

/** Splits and spools the parts of one multipart body. State for one call only. */
class PartSpooler {
  readonly #options: MultipartOptions;
  readonly #limits: MultipartParserLimits;
  readonly #spools: BodySpool[] = [];
  readonly parts: MultipartPart[] = [];
  #memoryLeft: number;
  #open: OpenPart | null = null;
  /** The nested multipart/mixed parser of the current outer part, with its field name. */
  #nested: { parser: MultipartParser; fieldName: string | null } | null = null;

  constructor(options: MultipartOptions) {
    this.#options = options;
    this.#limits = { ...DEFAULT_MULTIPART_LIMITS, ...options.limits };
    this.#memoryLeft = options.limits?.memoryBudgetBytes ?? options.spool.memoryBytes;
  }

  get limits(): MultipartParserLimits {
    return this.#limits;
  }

  dispose = async (): Promise<void> => {
    await Promise.all(this.#spools.map((s) => s.dispose()));
  };

  /** Handles outer events in order, waiting for each spool's drain. */
  async handle(events: readonly MultipartEvent[]): Promise<void> {
    for (const event of events) {
      if (this.#nested) {
        await this.#handleNested(event);
        continue;
      }
      switch (event.type) {
        case 'part-start':
          if (isNestedMultipart(event.headers)) {
            this.#nested = { parser: new MultipartParser(event.headers.boundary!, this.#limits), fieldName: event.headers.fieldName };
          } else {
            this.#openPart(event.headers, event.headers.fieldName);
          }
          break;
        case 'part-data':
          await this.#write(event.data);
          break;
        case 'part-end':
          await this.#closePart();
          break;
        case 'end':
          break;
      }
    }
  }

  async #handleNested(event: MultipartEvent): Promise<void> {
    const nested = this.#nested!;
    if (event.type === 'part-data') {
      await writeParser(nested.parser, event.data, async (events) => {
        for (const inner of events) {
          if (inner.type === 'part-start') this.#openPart(inner.headers, nested.fieldName);
          else if (inner.type === 'part-data') await this.#write(inner.data);
          else if (inner.type === 'part-end') await this.#closePart();
        }
      });
    } else if (event.type === 'part-end') {
      nested.parser.end(); // throws 'truncated' when the inner close delimiter is missing
      this.#nested = null;
    }
  }

  #openPart(headers: PartHeaders, fieldName: string | null): void {
    if (this.parts.length + 1 > this.#limits.maxParts) {
      throw new MultipartError('too-many-parts', `more than ${this.#limits.maxParts} parts`);
    }
    const memoryBytes = Math.max(0, Math.min(this.#options.spool.memoryBytes, this.#memoryLeft));
    const spool = new BodySpool({ ...this.#options.spool, memoryBytes });
    this.#spools.push(spool);
    this.#open = { headers, fieldName, spool, hash: new Sha256Accumulator() };
  }

  #write(data: Buffer): Promise<void> {
    const open = this.#open!;
    open.hash.update(data);
    return new Promise((resolve, reject) => writeToSpool(open.spool, data, (err) => (err ? reject(err) : resolve())));
  }

  async #closePart(complete = true): Promise<void> {
    const open = this.#open;
    if (!open) return;
    this.#open = null;
    const body = await open.spool.end();
    if (body.memory) this.#memoryLeft -= body.size;
    const { headers } = open;
    this.parts.push({
      index: this.parts.length,
      fieldName: open.fieldName,
      fileName: headers.fileName,
      mediaType: headers.mediaType,
      isFile: looksLikeFile(headers),
      headers,
      body,
      sha256: open.hash.hex(),
      complete,
    });
  }

  /** After a failure: keep the part being written, marked incomplete, when its spool is sound. */
  async salvage(): Promise<void> {
    try {
      await this.#closePart(false);
    } catch {
      // Its spool failed; the part is not returned and dispose() still removes its file.
    }
  }
}

/** Feeds one slice and handles its events, including those before a parse error, which it rethrows. */
async function writeParser(
  parser: MultipartParser,
  slice: Buffer,
  handle: (events: readonly MultipartEvent[]) => Promise<void>,
): Promise<void> {
  let events: readonly MultipartEvent[];
  try {
    events = parser.write(slice);
  } catch (err) {
    if (err instanceof MultipartError) await handle(err.events);
    throw err;
  }
  await handle(events);
}

export async function spoolMultipartParts(
  body: SpooledBody,
  contentType: string | null | undefined,
  options: MultipartOptions,
): Promise<MultipartResult> {
  const spooler = new PartSpooler(options);
  const fail = (reason: MultipartFailure, message: string): MultipartResult => ({
    ok: false,
    kind: MULTIPART_FAILURE_KINDS[reason],
    reason,
    message,
    parts: spooler.parts,
    dispose: spooler.dispose,
  });
  let parser: MultipartParser;
  try {
    parser = new MultipartParser(boundaryFromContentType(contentType).boundary, spooler.limits);
  } catch (err) {
    return fail((err as MultipartError).code, (err as Error).message);
  }
  const { signal } = options;
  if (signal?.aborted) return fail('aborted', 'aborted before parsing');

  let stream: Readable;
  try {
    stream = body.createReadStream();
  } catch (err) {
    return fail('io-error', `cannot read the body: ${(err as Error).message}`);
  }
  const onAbort = (): void => {
    stream.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) await writeParser(parser, chunk as Buffer, (events) => spooler.handle(events));
    if (signal?.aborted) throw new Error('aborted');
    await spooler.handle(parser.end());
    return { ok: true, parts: spooler.parts, dispose: spooler.dispose };
  } catch (err) {
    stream.destroy();
    if (signal?.aborted) return fail('aborted', 'parsing aborted');
    if (err instanceof MultipartError) {
      await spooler.salvage();
      return fail(err.code, err.message);
    }
    return fail('io-error', (err as Error).message);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
