/**
 * The scan of one complete body (DESIGN.md step 5, extended by issue 5): what gets scanned, by
 * whom, and what the verdict cache already knows. Steps 1 and 2, decoding and splitting the body
 * into subjects, are prepared-content.ts; the transaction may run them first, when the policy
 * needs to know what the body holds (a file type, a hash), and hand them in as `prepared`.
 *
 * Each thing scanned is a "subject". Subjects with a SHA-256 (the body, the decoded body, each
 * complete part or piece outside the parts) are looked up in the verdict cache first: when every
 * subject hits, streams still running are aborted and nothing is scanned. A subject without a
 * key (the raw body the streams scan beside the parts) is never answered by the cache, so it
 * still runs. Subjects that missed are scanned, and each is stored under its own key when every
 * backend gave it a definite verdict. A decoding or split failure bypasses the cache: only
 * definite verdicts on whole content are ever stored.
 *
 * What the transaction answers with (echo, 204, block page) is always built from the original
 * body, never from anything here. A sanitized copy (CDR) is only usable when it replaces the
 * body as received; one made of a decoded body or a part becomes an `unsupported` error.
 *
 * Never rejects: every step it takes never rejects (should one break that, the spools made so
 * far are freed before the error goes on). dispose() frees every spool made here (decoded body,
 * parts); the transaction calls it on every path. Sanitized results of the raw body stay the
 * caller's to dispose.
 */
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../backends/backend.js';
import type { ContentDecodingLimits } from './content-decoding.js';
import { derivedMeta } from './derived-meta.js';
import { prepareContent, type Piece, type PreparedContent, type Subject as PreparedSubject } from './prepared-content.js';
import { NO_STREAMS, runScans, scanNowOrError } from './run-scans.js';
import { scanPartsWithBackends, type PartsScanOutcome } from './scan-parts.js';
import type { SpoolOptions } from './spool.js';
import type { SpooledBody } from './spooled-body.js';
import { cacheableVerdict, verdictCacheContext, verdictCacheKey, type CachedVerdict, type VerdictCache } from './verdict-cache.js';

export { CONTENT_DECODING, MULTIPART } from './prepared-content.js';

export interface ContentScanInput {
  readonly backends: readonly Backend[];
  /** The body as received: what is echoed, and what streams were fed. */
  readonly body: SpooledBody;
  /** SHA-256 of `body`, computed while it arrived; null when not computed (no cache, hash list or backend lookup wanted it). */
  readonly bodySha256: string | null;
  /** Asked for only when a backend needs it (see Backend.scanNow); the same object every time. */
  readonly meta: () => ScanMeta;
  /** Asked for only when needed, like `meta`: the transaction's signal. */
  readonly signal: () => AbortSignal;
  /** Scans fed the raw body while it arrived. */
  readonly streams: ReadonlyMap<Backend, StreamingScan>;
  /** Ends every stream without a verdict (a cache hit, or content scanned otherwise). */
  readonly abortStreams: (reason: string) => void;
  readonly decode: { readonly contentEncoding: string; readonly limits: Partial<ContentDecodingLimits> } | null;
  readonly multipart: { readonly contentType: string; readonly maxParts: number } | null;
  readonly spool: SpoolOptions;
  /** The cache and this transaction's context digest (verdictCacheScope), or null. */
  readonly cache: { readonly cache: VerdictCache; readonly context: string } | null;
  /** Steps 1 and 2 already run (prepareContent on this input's body); this scan then owns them. */
  readonly prepared?: PreparedContent;
}

export interface ScannedResult {
  readonly result: BackendResult;
  /** The label of the multipart piece the result is about: partLabel() of a part, or `preamble`/`epilogue`. */
  readonly part?: string;
  /** Not a backend scanning now: a content failure made an outcome, or a cached verdict. */
  readonly synthetic?: 'content' | 'cache';
}

export interface PartSummary {
  readonly label: string;
  readonly file_name?: string;
  readonly media_type: string;
  readonly bytes: number;
  /** clean | infected | error:<kind>; `cached` when it came from the cache. */
  readonly outcome: string;
  readonly threats: string[];
  readonly cached?: true;
}

export interface ContentScan {
  readonly results: readonly ScannedResult[];
  readonly cache: 'hit' | 'miss' | 'bypass';
  /** Present when a Content-Encoding was undone (or failed to be). */
  readonly decoding?: { readonly codings: string[]; readonly outcome: string; readonly decoded_bytes?: number };
  /** Present for a multipart upload: `split` or why the split failed, and the part count. */
  readonly multipart?: { readonly outcome: string; readonly parts: number };
  readonly parts?: readonly PartSummary[];
  readonly batches: PartsScanOutcome['batches'];
  dispose(): Promise<void>;
}

/**
 * The cache context of one transaction: the engines that scan (name and version, which changes
 * with signature updates) and the policy that chose them (service, rule, backend list).
 */
export function verdictCacheScope(backends: readonly Backend[], service: string, rule: string | null): string {
  const policy = JSON.stringify([service, rule, backends.map((b) => b.name)]);
  return verdictCacheContext(backends.map((b) => `${b.name}@${b.version}`), policy);
}

/** A prepared subject as it is scanned: which backends, and what the cache or they said. */
interface Subject extends PreparedSubject {
  readonly backends: readonly Backend[];
  cached?: CachedVerdict;
  results?: BackendResult[];
}

/**
 * The scan itself when nothing in it has to wait, else a promise of it. The body as received (no
 * Content-Encoding to undo, not multipart, no stream fed) goes by scanAsReceived; anything else
 * through the steps above, asynchronously.
 */
export function scanContent(input: ContentScanInput): ContentScan | Promise<ContentScan> {
  if (input.prepared === undefined && input.decode === null && input.multipart === null && input.streams.size === 0) return scanAsReceived(input);
  return scanTransformed(input);
}

async function scanTransformed(input: ContentScanInput): Promise<ContentScan> {
  const prepared = input.prepared ?? (await prepareContent(input));
  try {
    return await scanPrepared(input, prepared);
  } catch (err) {
    // Every step says it never rejects; should one break that promise, no spool is left behind.
    await prepared.dispose();
    throw err;
  }
}

async function scanPrepared(input: ContentScanInput, prepared: PreparedContent): Promise<ContentScan> {
  const synthetic: ScannedResult[] = prepared.failures.map(({ backend, kind, message }) => ({
    result: { outcome: 'error', backend, kind, message, durationMs: 0 },
    synthetic: 'content',
  }));
  const out: { decoding?: ContentScan['decoding']; multipart?: ContentScan['multipart'] } = {};
  if (prepared.decoding !== undefined) out.decoding = prepared.decoding;
  if (prepared.multipart !== undefined) out.multipart = prepared.multipart;
  // The rule chosen decides the backends. The safety net (the raw body whole) goes to the backends
  // that stream: fed while the body arrived when the rule was chosen by then, else read now from
  // the spool (a rule chosen only at the end, on what the parts are, opened no stream).
  const streamed = input.backends.filter((b) => b.openStream !== undefined);
  const subjects: Subject[] = [];
  for (const s of prepared.subjects) {
    if (s.streamsOnly !== true) subjects.push({ ...s, backends: input.backends });
    else if (streamed.length > 0) subjects.push({ ...s, backends: streamed });
  }
  // Streams were fed the raw body; when no subject is the raw body they have nothing to say.
  if (!subjects.some((s) => s.raw)) input.abortStreams('raw body not scanned');

  // 3. The cache: every subject hits (a keyless one never does), or the ones not known are scanned.
  const cache = synthetic.length === 0 ? input.cache : null;
  const status = lookUpCache(subjects, cache);
  const toScan = status === 'hit' ? [] : subjects.filter((s) => s.cached === undefined);
  if (status === 'hit') input.abortStreams('verdict cache hit');
  const batches = await scanSubjects(toScan, input);
  return collectResults(subjects, synthetic, cache, status, out, batches, prepared.dispose);
}

/**
 * The body as received, nothing fed to streams: the cache, then every backend on the body. At once
 * (no promise) on a cache hit, or when every backend answers at once (Backend.scanNow: the embedded
 * engine on a small body in memory); otherwise the backends that cannot are awaited. A 4 KiB RESPMOD
 * went through five async functions and a Promise.all here: ≈ 8 KB of its ≈ 22 KB allocated.
 */
function scanAsReceived(input: ContentScanInput): ContentScan | Promise<ContentScan> {
  const subject: Subject = { body: input.body, sha256: input.bodySha256, backends: input.backends, raw: true };
  const subjects = [subject];
  const status = lookUpCache(subjects, input.cache);
  const collect = (): ContentScan => collectResults(subjects, [], input.cache, status, {}, [], disposeNothing);
  if (status === 'hit') return collect();
  const now = input.backends.map((backend) => scanNowOrError(backend, input.body));
  const waiting = input.backends.filter((_, i) => now[i] === undefined);
  if (waiting.length === 0) {
    subject.results = now as BackendResult[];
    return collect();
  }
  // runScans never rejects: a backend that throws is an error result.
  return runScans(waiting, input.body, input.meta, input.signal, NO_STREAMS, input.bodySha256).then((later) => {
    let next = 0;
    subject.results = now.map((result) => result ?? later[next++]!);
    return collect();
  });
}

async function disposeNothing(): Promise<void> {}

/**
 * Marks the subjects the cache knows. 'hit' only when every subject is known, so that nothing is
 * left to scan; 'bypass' when no subject has a key. A subject without a key (the raw body the
 * streams scan beside the parts) can never be known: it still runs and the answer is a 'miss',
 * even when every part hit (those are not scanned again). Calling that a hit would abort the one
 * scan that sees the bytes between the parts, whose finding was never stored anywhere.
 */
function lookUpCache(subjects: readonly Subject[], cache: ContentScanInput['cache']): ContentScan['cache'] {
  if (cache === null) return 'bypass';
  let keyed = 0;
  let known = 0;
  for (const subject of subjects) {
    if (subject.sha256 === null) continue;
    keyed++;
    const lookup = cache.cache.get(verdictCacheKey(subject.sha256, cache.context));
    if (lookup.hit) {
      subject.cached = lookup.verdict;
      known++;
    }
  }
  if (keyed === 0) return 'bypass';
  return known === subjects.length ? 'hit' : 'miss';
}

/**
 * 4. Stores what is definite; gathers the results in subject order. Each subject's own results go
 * under its own key only: a finding of the keyless whole body never lands on a part's key (the
 * part would then be blocked wherever it goes), nor a part's clean verdict on the body's.
 */
function collectResults(
  subjects: readonly Subject[],
  synthetic: readonly ScannedResult[],
  cache: ContentScanInput['cache'],
  status: ContentScan['cache'],
  out: { decoding?: ContentScan['decoding']; multipart?: ContentScan['multipart'] },
  batches: PartsScanOutcome['batches'],
  dispose: () => Promise<void>,
): ContentScan {
  const results: ScannedResult[] = [...synthetic];
  for (const subject of subjects) {
    const label = subject.piece?.label;
    const own = subject.cached ? resultsFromCache(subject.cached) : (subject.results ?? []);
    if (!subject.cached && subject.results && cache !== null && subject.sha256 !== null) {
      cache.cache.set(verdictCacheKey(subject.sha256, cache.context), cacheableVerdict(subject.results));
    }
    for (const result of own) {
      // Set field by field, not spread in: this runs for every result of every transaction.
      const scanned: { result: BackendResult; part?: string; synthetic?: 'cache' } = { result };
      if (label !== undefined) scanned.part = label;
      if (subject.cached) scanned.synthetic = 'cache';
      results.push(scanned);
    }
  }
  const parts = subjects.flatMap((s) => (s.piece === undefined ? [] : [summarizePiece(s, s.piece)]));
  return { results, cache: status, ...out, ...(parts.length > 0 && { parts }), batches, dispose };
}

/** Scans every subject in parallel; fills each one's `results`. Returns the parts' batches. */
async function scanSubjects(subjects: readonly Subject[], input: ContentScanInput): Promise<PartsScanOutcome['batches']> {
  const parts = subjects.filter((s) => s.piece !== undefined);
  const whole = subjects.filter((s) => s.piece === undefined);
  const [partsScan] = await Promise.all([
    parts.length === 0
      ? null
      : scanPartsWithBackends(
          input.backends,
          parts.map((s) => ({ body: s.body, label: s.piece!.label, contentType: s.piece!.mediaType, ...(s.piece!.fileName !== null && { fileName: s.piece!.fileName }) })),
          input.meta(),
          input.signal(),
        ),
    ...whole.map(async (s) => {
      // The decoded body goes out under a head that describes it (derived-meta.ts), not the raw one.
      const meta = s.raw ? input.meta : (): ScanMeta => derivedMeta(input.meta(), { size: s.body.size });
      s.results = await runScans(s.backends, s.body, meta, input.signal, s.raw ? input.streams : NO_STREAMS, s.sha256);
    }),
  ]);
  parts.forEach((s, i) => {
    s.results = [...partsScan!.byPart[i]!];
  });
  for (const s of subjects) if (!s.raw) s.results = await Promise.all(s.results!.map(unusableCopy));
  return partsScan?.batches ?? [];
}

/**
 * A sanitized copy of a decoded body or of one part cannot be sent in place of the original
 * (its encoding or its siblings would be lost), and the original is not known to be clean:
 * the policy decides, as for content that cannot be scanned.
 */
async function unusableCopy(result: BackendResult): Promise<BackendResult> {
  if (result.outcome !== 'sanitized') return result;
  await result.dispose().catch(() => {});
  return {
    outcome: 'error',
    backend: result.backend,
    kind: 'unsupported',
    message: 'the engine rewrote a decoded body or a part; only the whole original could be replaced',
    durationMs: result.durationMs,
  };
}

/** A cached verdict as results: clean per backend, or the threats (found by the cache's backends). */
function resultsFromCache(verdict: CachedVerdict): BackendResult[] {
  if (verdict.outcome === 'clean') return verdict.backends.map((backend) => ({ outcome: 'clean', backend, durationMs: 0 }));
  return [{ outcome: 'infected', backend: verdict.backends.join('+') || 'cache', threats: verdict.threats, durationMs: 0 }];
}

function summarizePiece(subject: Subject, piece: Piece): PartSummary {
  const own = subject.cached ? resultsFromCache(subject.cached) : (subject.results ?? []);
  const threats = [...new Set(own.flatMap((r) => (r.outcome === 'infected' ? r.threats : [])))];
  const error = own.find((r) => r.outcome === 'error');
  let outcome = 'clean';
  if (own.some((r) => r.outcome === 'infected')) outcome = 'infected';
  else if (error?.outcome === 'error') outcome = `error:${error.kind}`;
  return {
    label: piece.label,
    ...(piece.fileName !== null && { file_name: piece.fileName }),
    media_type: piece.mediaType,
    bytes: subject.body.size,
    outcome,
    threats,
    ...(subject.cached && { cached: true as const }),
  };
}
