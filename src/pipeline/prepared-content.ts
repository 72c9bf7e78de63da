/**
 * Steps 1 and 2 of a content scan (scan-content.ts): what the body holds, made ready to scan.
 *
 *   body ─┬─ Content-Encoding? ─► decode ─┬─ ok ─────► the decoded body is "the content"
 *         │                               └─ failed ─► raw body + partial decode, and the failure
 *         │                                            as an outcome for the policy
 *         └─ the content ─┬─ multipart? ─► split ─┬─ ok ─────► each part, and the bytes outside
 *                         │                       │            them that are not blank; raw body
 *                         │                       │            by streams only
 *                         │                       └─ failed ─► salvaged parts + the whole content,
 *                         │                                    and the failure as an outcome
 *                         └─ else ────────────────► the content, whole
 *
 * Each thing to scan is a "subject". Made apart from the scan itself because the policy needs it
 * first: a `file_type` rule and a hash list are about the file the user gets, which is the decoded
 * body or an uploaded part, not the gzip or multipart wrapping around it (contentFacts below).
 * Which backends scan is not known here: the rule chosen on these facts decides (scan-content.ts).
 *
 * Never rejects (decodeContentEncoding and spoolMultipartParts never do). dispose() frees every
 * spool made here, never the body as received; it may be called more than once.
 */
import type { ScanErrorKind } from '../backends/backend.js';
import { detectFileType, SNIFF_BYTES, type FileType } from '../policy/file-type.js';
import { decodeContentEncoding, type ContentDecodingLimits } from './content-decoding.js';
import { partLabel, spoolMultipartParts, type MultipartPart, type OutsideBytes } from './multipart/index.js';
import type { SpoolOptions } from './spool.js';
import type { SpooledBody } from './spooled-body.js';

/** Backend names of the outcomes this module makes up (they appear in `errors=` and logs). */
export const CONTENT_DECODING = 'content-decoding';
export const MULTIPART = 'multipart';

export interface PrepareInput {
  /** The body as received: what is echoed, and what streams were fed. */
  readonly body: SpooledBody;
  /** SHA-256 of `body`, computed while it arrived; null when not computed. */
  readonly bodySha256: string | null;
  /** Asked for only when needed: the transaction's signal. */
  readonly signal: () => AbortSignal;
  readonly decode: { readonly contentEncoding: string; readonly limits: Partial<ContentDecodingLimits> } | null;
  readonly multipart: { readonly contentType: string; readonly maxParts: number } | null;
  readonly spool: SpoolOptions;
}

/** What names a piece of an upload scanned as its own file: a part, or bytes outside the parts. */
export interface Piece {
  /** partLabel() of a part; `preamble` or `epilogue` for the bytes before or after the parts. */
  readonly label: string;
  readonly fileName: string | null;
  readonly mediaType: string;
}

export interface Subject {
  readonly body: SpooledBody;
  /**
   * Cache key content, and the digest handed to backends that look bodies up by it (run-scans.ts);
   * null = never looked up or stored (such a backend then hashes the body itself).
   */
  readonly sha256: string | null;
  /** The body as received, which the streams were fed. */
  readonly raw: boolean;
  /**
   * Scanned only by the backends that stream (the raw multipart body beside its parts, a safety
   * net: what only a whole-body scan sees), and dropped when the rule has none.
   */
  readonly streamsOnly?: true;
  readonly piece?: Piece;
}

export interface PreparedContent {
  /** In scan order; never empty. */
  readonly subjects: readonly Subject[];
  /** Content failures (decoding, split) as outcomes, in the order they happened. */
  readonly failures: readonly { readonly backend: string; readonly kind: ScanErrorKind; readonly message: string }[];
  /** SHA-256 of the decoded body when decoding succeeded, else null. */
  readonly decodedSha256: string | null;
  readonly decoding?: { readonly codings: string[]; readonly outcome: string; readonly decoded_bytes?: number };
  readonly multipart?: { readonly outcome: string; readonly parts: number };
  dispose(): Promise<void>;
}

/** Nothing says what the bytes outside the parts are. */
const OUTSIDE_MEDIA_TYPE = 'application/octet-stream';

function partPiece(part: MultipartPart): Piece {
  return { label: partLabel(part), fileName: part.fileName, mediaType: part.mediaType };
}

function outsidePiece(outside: OutsideBytes): Piece {
  return { label: outside.region, fileName: null, mediaType: OUTSIDE_MEDIA_TYPE };
}

/** Decodes and splits as the plan says; without either, the body as received is the one subject. */
export async function prepareContent(input: PrepareInput): Promise<PreparedContent> {
  const disposers: (() => Promise<void>)[] = [];
  let disposed: Promise<void> | null = null;
  const dispose = (): Promise<void> => (disposed ??= Promise.all(disposers.map((d) => d().catch(() => {}))).then(() => {}));
  try {
    return await prepareWith(input, disposers, dispose);
  } catch (err) {
    // Every step says it never rejects; should one break that promise, no spool is left behind.
    await dispose();
    throw err;
  }
}

async function prepareWith(input: PrepareInput, disposers: (() => Promise<void>)[], dispose: () => Promise<void>): Promise<PreparedContent> {
  const failures: { backend: string; kind: ScanErrorKind; message: string }[] = [];
  const out: { decoding?: PreparedContent['decoding']; multipart?: PreparedContent['multipart'] } = {};
  const rawSubject: Subject = { body: input.body, sha256: input.bodySha256, raw: true };

  // 1. The content: the body, or the body decoded.
  let content: Subject = rawSubject;
  let decodedSha256: string | null = null;
  const subjects: Subject[] = [];
  if (input.decode !== null) {
    const decoded = await decodeContentEncoding(input.body, input.decode.contentEncoding, {
      spool: input.spool,
      limits: input.decode.limits,
      signal: input.signal(),
    });
    disposers.push(decoded.dispose);
    if (decoded.ok) {
      if (decoded.decoded) {
        content = { body: decoded.body, sha256: decoded.sha256, raw: false };
        decodedSha256 = decoded.sha256;
      }
      out.decoding = { codings: [...decoded.codings], outcome: decoded.decoded ? 'decoded' : 'identity', decoded_bytes: decoded.body.size };
    } else {
      out.decoding = { codings: [...decoded.codings], outcome: decoded.reason, ...(decoded.partial && { decoded_bytes: decoded.partial.size }) };
      // A bomb has its own outcome (blocked unless named allow); content-decoding.ts maps it to too-large.
      failures.push({ backend: CONTENT_DECODING, kind: decoded.reason === 'decompression-bomb' ? 'decompression-bomb' : decoded.kind, message: decoded.message });
      // What a lenient client would still render, and the raw bytes: a finding in either blocks.
      if (decoded.partial !== null && decoded.partial.size > 0) subjects.push({ body: decoded.partial, sha256: null, raw: false });
      content = { ...content, sha256: null };
    }
  }

  // 2. The subjects: the content's parts, or the content whole.
  if (input.multipart !== null && failures.length === 0) {
    const split = await spoolMultipartParts(content.body, input.multipart.contentType, {
      spool: input.spool,
      limits: { maxParts: input.multipart.maxParts },
      signal: input.signal(),
    });
    disposers.push(split.dispose);
    out.multipart = { outcome: split.ok ? 'split' : split.reason, parts: split.parts.length };
    for (const part of split.parts) {
      subjects.push({ body: part.body, sha256: part.complete ? part.sha256 : null, raw: false, piece: partPiece(part) });
    }
    if (split.ok && split.parts.length > 0) {
      // The preamble and epilogue unless blank (spool-parts.ts, "Outside the parts"): receivers
      // drop them, but a threat anywhere in the body blocks, and only streams see the body whole.
      // Scanned as pieces of their own rather than by a second whole-body scan: each starts at
      // its own first byte as a stored file would, so engines that go by file type see it as
      // one; a stray byte costs a scan of the odd bytes, not of the whole upload again; and a
      // finding is named (`part=preamble`, `(in epilogue)`). A nested multipart part is a part
      // here, scanned whole as well as split (spool-parts.ts).
      for (const outside of split.outside) {
        const subject: Subject = { body: outside.body, sha256: outside.sha256, raw: false, piece: outsidePiece(outside) };
        if (outside.region === 'preamble') subjects.unshift(subject);
        else subjects.push(subject);
      }
      // The whole raw body too, by the backends that stream (fed as it arrived): a safety net. It
      // has no key: its verdict comes from only some of the backends, so it cannot stand for the
      // body's, and it is never answered from the cache (scan-content.ts lookUpCache).
      if (content.raw) subjects.unshift({ ...rawSubject, sha256: null, streamsOnly: true });
    } else {
      if (!split.ok) failures.push({ backend: MULTIPART, kind: split.kind, message: split.message });
      subjects.unshift({ ...content, sha256: split.ok ? content.sha256 : null });
    }
  } else {
    subjects.unshift(content);
  }
  return { subjects, failures, decodedSha256, ...out, dispose };
}

/** What the policy learns from prepared content (policy/attributes.ts BodyFacts). */
export interface ContentFacts {
  /** The file type of each subject with bytes, the streams' safety net left out. */
  readonly fileTypes: readonly FileType[];
  /** The decoded body's digest, for allow and deny lists alike. */
  readonly decodedSha256?: string;
  /** Each part's and outside piece's digest, for deny lists only. */
  readonly pieceSha256s: readonly string[];
}

/**
 * The facts of each subject a user could end up with: the decoded body, each part. Reads the
 * first SNIFF_BYTES of each, one subject at a time: an upload can hold hundreds of parts in temp
 * files, and opening them all at once could run out of file descriptors. The body is complete, so
 * a short subject is typed as it is. Rejects when a subject cannot be read: an unreadable part
 * has no type a rule could safely miss, so the transaction answers an error (500) instead.
 */
export async function contentFacts(prepared: PreparedContent): Promise<ContentFacts> {
  const typed = prepared.subjects.filter((s) => s.streamsOnly !== true);
  const fileTypes = new Set<FileType>();
  for (const subject of typed) {
    const type = detectFileType(await firstBytes(subject.body, SNIFF_BYTES), true);
    if (type !== null && type !== undefined) fileTypes.add(type);
  }
  const pieceSha256s = typed.flatMap((s) => (s.piece !== undefined && s.sha256 !== null ? [s.sha256] : []));
  return { fileTypes: [...fileTypes], ...(prepared.decodedSha256 !== null && { decodedSha256: prepared.decodedSha256 }), pieceSha256s };
}

/** Up to `n` first bytes of a body, from memory or from its temp file; fewer when it is shorter. */
async function firstBytes(body: SpooledBody, n: number): Promise<Buffer> {
  const end = Math.min(n, body.size);
  if (end === 0) return Buffer.alloc(0);
  const first = body.memoryPieces?.[0];
  if (first !== undefined && first.length >= end) return first.subarray(0, end);
  const chunks: Buffer[] = [];
  for await (const chunk of body.createReadStream(0, end) as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).subarray(0, end);
}
