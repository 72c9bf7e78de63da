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
 *   several files in one field) is returned whole and then split into its inner parts, one level
 *   deep (deeper nesting stays inside the inner part, whole).
 * - Nothing in the body escapes scanning by sitting between parts (see "Outside the parts").
 * - Memory: all parts together keep at most `memoryBudgetBytes` in memory (default: one spool's
 *   `memoryBytes`); past that, parts go straight to temp files. The body is read in 64 KiB
 *   pieces with the spools' backpressure honoured.
 * - Failure: `{ ok: false, kind, reason, message, parts }`; `kind` is the ScanErrorKind the policy
 *   maps. `parts` holds what was split off before the failure (the part cut short by a missing
 *   close delimiter has `complete: false`) so the caller can still scan it; an infection there
 *   blocks whatever the policy says about the failure. The raw body should be scanned too.
 * - Each part carries its SHA-256, computed while spooling (the verdict cache key).
 * - A part declaring Content-Transfer-Encoding base64 or quoted-printable (RFC 2045 §6.8, §6.7)
 *   is returned as sent and, right after it, decoded: a part of its own (`decodedFrom` set,
 *   labelled e.g. `a.exe (base64)`), with its own SHA-256 and spool. RFC 7578 §4.7 deprecates the
 *   header, but receivers built on MIME libraries still decode it and store the decoded file,
 *   and others store the part as sent; either must be scanned. Decoding streams alongside the
 *   part's own spooling (transfer-encoding.ts; lenient, never fails), its spool takes its share
 *   of the same memory budget, and its output is never larger than the part as sent. Decoded
 *   parts do not count against `maxParts`, which counts the form's parts: one decoded form per
 *   encoding a part names.
 *   A decoded nested multipart is not split again (RFC 2045 §6.4 forbids encoding multipart).
 *
 * Outside the parts. A split that keeps only the parts' content would let a threat through in
 * the bytes around them, which the streaming backends see but the others would not:
 * - The preamble (before the first delimiter) and the epilogue (after the close delimiter) are
 *   discarded by receivers, but a parser that frames the body differently may keep them, and a
 *   threat anywhere in the body blocks. Each is returned in `outside` to be scanned as a piece
 *   of its own, unless it is only whitespace (SP, HTAB, CR, LF: the CRLF browsers put after the
 *   close delimiter), which nothing can be found in; so a normal upload costs nothing more.
 *   Leading whitespace is left out of the piece, which then starts at its first other byte.
 * - A nested multipart/mixed part is also scanned whole, as one file: most form parsers
 *   (busboy/multer, PHP) do not split nested multipart and store the part whole, inner preamble
 *   and epilogue included. Scanning the very file they store covers those bytes and anything
 *   that only matches across the inner framing, with no rule of our own about what is "inside".
 *   The inner parts are still scanned on their own, for receivers that do split them.
 * What remains outside every piece is framing the parser checked strictly: delimiter lines
 * (boundary, then only spaces and tabs) and part header blocks (header fields, bounded by
 * `maxHeaderBytes`), which no receiver stores as a file.
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
import { createTransferDecoder, transferDecodings, type TransferDecoder, type TransferDecoding } from './transfer-encoding.js';

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
  /**
   * False only for parts of a failed result cut off mid-content: the last part, and the nested
   * multipart part it is in (and the decoded form of either).
   */
  readonly complete: boolean;
  /**
   * Set on the decoded form of a part sent with Content-Transfer-Encoding base64 or
   * quoted-printable: the encoding undone, and the index of the part as sent (just before it).
   * Names, media type and headers are that part's. Null on every part as sent.
   */
  readonly decodedFrom: { readonly encoding: TransferDecoding; readonly index: number } | null;
}

/** Bytes outside every part that are not only whitespace; scanned as a piece of their own. */
export interface OutsideBytes {
  readonly region: 'preamble' | 'epilogue';
  /** From the region's first byte other than whitespace to its end. */
  readonly body: SpooledBody;
  /** SHA-256 (hex) of `body`. */
  readonly sha256: string;
}

export interface MultipartLimits extends MultipartParserLimits {
  /** Most bytes all parts together keep in memory before they go to temp files. */
  readonly memoryBudgetBytes?: number;
}

/** Proposed defaults for the config keys (content.multipart.*) the wiring adds. */
export const DEFAULT_MULTIPART_LIMITS: MultipartParserLimits = Object.freeze({
  maxParts: 1000,
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
  | { readonly ok: true; readonly parts: readonly MultipartPart[]; readonly outside: readonly OutsideBytes[]; dispose(): Promise<void> }
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

/**
 * The name a block or a log line gives a part: its file name, else its field, else its position;
 * for a decoded form, the part's name and the encoding undone: `a.exe (base64)`.
 */
export function partLabel(
  part: Pick<MultipartPart, 'index' | 'fieldName' | 'fileName'> & { readonly decodedFrom?: MultipartPart['decodedFrom'] },
): string {
  const from = part.decodedFrom ?? null;
  const name = part.fileName || (part.fieldName ? `field ${part.fieldName}` : `part ${(from?.index ?? part.index) + 1}`);
  return from === null ? name : `${name} (${from.encoding})`;
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

/** A spool being filled, with the memory it may use (reserved from the budget until it ends). */
interface OpenSpool {
  readonly spool: BodySpool;
  readonly hash: Sha256Accumulator;
  readonly reserved: number;
}

interface OpenPart extends OpenSpool {
  readonly index: number;
  readonly headers: PartHeaders;
  readonly fieldName: string | null;
  /** The part's decoded forms being written beside it, one per transfer encoding it declares. */
  readonly decoded: readonly OpenDecoded[];
}

interface OpenDecoded extends OpenSpool {
  readonly index: number;
  readonly encoding: TransferDecoding;
  readonly decoder: TransferDecoder;
}

interface OpenOutside extends OpenSpool {
  readonly region: OutsideBytes['region'];
}

/** Whitespace that can stand around the framing: SP, HTAB, CR, LF. */
function isBlank(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;
}

/** Splits and spools the parts of one multipart body. State for one call only. */
class PartSpooler {
  readonly #options: MultipartOptions;
  readonly #limits: MultipartParserLimits;
  readonly #spools: BodySpool[] = [];
  /** In body order (index order), whatever order they end in. */
  readonly parts: MultipartPart[] = [];
  readonly outside: OutsideBytes[] = [];
  #memoryLeft: number;
  /** Parts opened so far, decoded forms included: the next part's index. */
  #opened = 0;
  /** Parts of the form opened so far, decoded forms left out: what `maxParts` bounds. */
  #formParts = 0;
  /** The part whose content is being written (an inner part while #nested is set). */
  #open: OpenPart | null = null;
  /** The preamble or epilogue being written, once a byte other than whitespace came. */
  #outside: OpenOutside | null = null;
  /**
   * The nested multipart/mixed part being read: its inner parser, its field name, and the part
   * itself, spooled whole besides being split (see "Outside the parts").
   */
  #nested: { parser: MultipartParser; fieldName: string | null; whole: OpenPart } | null = null;

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
        case 'preamble':
          await this.#writeOutside('preamble', event.data);
          break;
        case 'part-start':
          await this.#closeOutside(); // the preamble ends at the first delimiter
          if (isNestedMultipart(event.headers)) {
            const whole = this.#openPart(event.headers, event.headers.fieldName);
            this.#nested = { parser: new MultipartParser(event.headers.boundary!, this.#limits), fieldName: event.headers.fieldName, whole };
          } else {
            this.#open = this.#openPart(event.headers, event.headers.fieldName);
          }
          break;
        case 'part-data':
          await this.#writePart(this.#open!, event.data);
          break;
        case 'part-end':
          await this.#closePart(this.#open);
          break;
        case 'end':
          await this.#closeOutside(); // a form with no parts: the preamble ends here
          break;
        case 'epilogue':
          await this.#writeOutside('epilogue', event.data);
          break;
      }
    }
  }

  /** The body is over: ends the epilogue, if one is being written. */
  finish(): Promise<void> {
    return this.#closeOutside();
  }

  async #handleNested(event: MultipartEvent): Promise<void> {
    const nested = this.#nested!;
    if (event.type === 'part-data') {
      await this.#writePart(nested.whole, event.data);
      // The inner preamble and epilogue are in the whole part, scanned as it is: ignored here.
      await writeParser(nested.parser, event.data, async (events) => {
        for (const inner of events) {
          if (inner.type === 'part-start') this.#open = this.#openPart(inner.headers, nested.fieldName);
          else if (inner.type === 'part-data') await this.#writePart(this.#open!, inner.data);
          else if (inner.type === 'part-end') await this.#closePart(this.#open);
        }
      });
    } else if (event.type === 'part-end') {
      nested.parser.end(); // throws 'truncated' when the inner close delimiter is missing
      this.#nested = null;
      await this.#closePart(nested.whole);
    }
  }

  #openPart(headers: PartHeaders, fieldName: string | null): OpenPart {
    if (this.#formParts + 1 > this.#limits.maxParts) {
      throw new MultipartError('too-many-parts', `more than ${this.#limits.maxParts} parts`);
    }
    this.#formParts++;
    const part = { ...this.#openSpool(), index: this.#opened++ };
    // Opened now, so each decoded form's index follows its part's and its memory is reserved.
    const decoded = transferDecodings(headers).map((encoding) => ({
      ...this.#openSpool(),
      index: this.#opened++,
      encoding,
      decoder: createTransferDecoder(encoding),
    }));
    return { ...part, headers, fieldName, decoded };
  }

  /**
   * A part's spool may keep what is left of the budget in memory. It is reserved now, not when
   * the part ends: a nested part and one of its inner parts are written at the same time.
   */
  #openSpool(): OpenSpool {
    const reserved = Math.max(0, Math.min(this.#options.spool.memoryBytes, this.#memoryLeft));
    this.#memoryLeft -= reserved;
    const spool = new BodySpool({ ...this.#options.spool, memoryBytes: reserved });
    this.#spools.push(spool);
    return { spool, hash: new Sha256Accumulator(), reserved };
  }

  /** Ends a spool; what of its reservation it did not keep in memory goes back to the budget. */
  async #endSpool(open: OpenSpool): Promise<SpooledBody> {
    const body = await open.spool.end();
    this.#memoryLeft += open.reserved - (body.memory ? body.size : 0);
    return body;
  }

  /** Writes a part's bytes as sent, then their decoded forms. */
  async #writePart(open: OpenPart, data: Buffer): Promise<void> {
    await this.#write(open, data);
    for (const decoded of open.decoded) {
      const out = decoded.decoder.write(data);
      if (out.length > 0) await this.#write(decoded, out);
    }
  }

  #write(open: OpenSpool, data: Buffer): Promise<void> {
    open.hash.update(data);
    return new Promise((resolve, reject) => writeToSpool(open.spool, data, (err) => (err ? reject(err) : resolve())));
  }

  /** Writes preamble or epilogue bytes; whitespace before anything else is not kept. */
  async #writeOutside(region: OpenOutside['region'], data: Buffer): Promise<void> {
    let from = 0;
    if (this.#outside === null) {
      while (from < data.length && isBlank(data[from]!)) from++;
      if (from === data.length) return;
      this.#outside = { ...this.#openSpool(), region };
    }
    await this.#write(this.#outside, data.subarray(from));
  }

  async #closeOutside(): Promise<void> {
    const open = this.#outside;
    if (!open) return;
    this.#outside = null;
    const body = await this.#endSpool(open);
    this.outside.push({ region: open.region, body, sha256: open.hash.hex() });
  }

  /**
   * Ends a part and its decoded forms and returns them. Each is ended even when another's spool
   * failed (salvage keeps what it can); the first failure is rethrown after.
   */
  async #closePart(open: OpenPart | null, complete = true): Promise<void> {
    if (!open) return;
    if (open === this.#open) this.#open = null;
    let failure: { err: unknown } | null = null;
    try {
      this.#addPart(open, open, await this.#endSpool(open), complete, null);
    } catch (err) {
      failure = { err };
    }
    for (const decoded of open.decoded) {
      try {
        const rest = decoded.decoder.end();
        if (rest.length > 0) await this.#write(decoded, rest);
        const from = { encoding: decoded.encoding, index: open.index };
        this.#addPart(open, decoded, await this.#endSpool(decoded), complete, from);
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure !== null) throw failure.err;
  }

  /** Returns `written` (the part, or one of its decoded forms), in index order. */
  #addPart(
    open: OpenPart,
    written: OpenSpool & { readonly index: number },
    body: SpooledBody,
    complete: boolean,
    decodedFrom: MultipartPart['decodedFrom'],
  ): void {
    const { headers } = open;
    const part: MultipartPart = {
      index: written.index,
      fieldName: open.fieldName,
      fileName: headers.fileName,
      mediaType: headers.mediaType,
      isFile: looksLikeFile(headers),
      headers,
      body,
      sha256: written.hash.hex(),
      complete,
      decodedFrom,
    };
    // A nested part ends after its inner parts but comes before them.
    const after = this.parts.findIndex((p) => p.index > part.index);
    if (after === -1) this.parts.push(part);
    else this.parts.splice(after, 0, part);
  }

  /** After a failure: keep the parts being written, marked incomplete, when their spools are sound. */
  async salvage(): Promise<void> {
    const whole = this.#nested?.whole ?? null;
    this.#nested = null;
    for (const open of [this.#open, whole]) {
      try {
        await this.#closePart(open, false);
      } catch {
        // Its spool failed; the part is not returned and dispose() still removes its file.
      }
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
    await spooler.finish();
    return { ok: true, parts: spooler.parts, outside: spooler.outside, dispose: spooler.dispose };
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
