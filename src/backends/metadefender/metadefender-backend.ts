/**
 * MetaDefender Core v4/v5 over REST (DESIGN.md "Backends and pools",
 * specs/metadefender-core-api.md). Core needs a Content-Length, so this backend scans the
 * complete spool rather than a stream.
 *
 *   scan(body)
 *     ├─ size 0 ─────────────────────────────────────► clean (§2: Core answers 422; never submit)
 *     └─ lease endpoint E from the pool (held for the job's whole life)
 *          ├─ hash_lookup: GET /hash/{sha256} on E ── known verdict ─► clean / infected
 *          ├─ over max_file_bytes ─────────────────► error 'too-large', nothing uploaded
 *          └─ POST /file (Content-Length) on E ── 503 / refused ─► once more on another E
 *               └─ data_id ─► GET /file/{data_id} on E only (§9), back-off poll_initial_ms → poll_max_ms
 *                     │     (a Retry-After on a 429/503 poll: the next wait at least that, up to the deadline)
 *                     ├─ E lost the job (connection fails repeatedly) ─► resubmit once on another E
 *                     ├─ unknown data_id (404 or {"id":"Not Found"}) ─► POST /file once more on E and
 *                     │     poll the new data_id; unknown again ─► error, never clean
 *                     └─ finished ─► result-map.ts ─► sanitize? GET /file/converted/{data_id} on E
 *                                                         (≤ sanitizedLimit; a failed temp file is an error)
 *
 * The pool (src/backends/pool/pooled-endpoints.ts) balances, limits jobs per server, ejects a
 * server after a refused connection (at once) or eject_after 503s, and checks /readyz (or /version
 * on v4) with hysteresis. In DNS mode E is one address of a name: every call of the job goes to
 * that address with `Host: <name>:<port>` (core-endpoint.ts). One AbortSignal bounds the whole
 * scan (timeout_ms, the caller's abort, close()). A job given up on for any reason (that signal,
 * an unusable poll answer, repeated 429/5xx polls, a server lost mid-job) is cancelled on its
 * server once, best effort (§3 Cancel, open-jobs.ts); close() cancels the jobs still running.
 *
 * scanParts (the parts of one multipart upload) sends them as one batch to one leased server:
 * parts-scan.ts and batch-scan.ts (§7).
 */
import { scanDeadline } from '../scan-deadline.js';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, BackendResult, ScanErrorKind, ScanMeta } from '../backend.js';
import { sha256OfSpooledBody } from '../../pipeline/hashing.js';
import { SpoolError } from '../../pipeline/spool.js';
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import { PoolUnavailableError, type EndpointHealthChange, type LeaseOutcome } from '../pool/endpoint-pool.js';
import { withFailover, type AttemptResult } from '../pool/failover.js';
import { PooledEndpoints, type HostPort } from '../pool/pooled-endpoints.js';
import { poolSettings, type PoolSettings } from '../pool/pool-settings.js';
import { classify, CoreEndpoint, MD_ERROR_CODES, MetaDefenderError, type DownloadReply, type JsonReply } from './core-endpoint.js';
import { CoreNode, describeVersion } from './core-node.js';
import { isUsableBatchId } from './batch-headers.js';
import { cancelBatch } from './batch-scan.js';
import { isTransientStatus } from './batch-status.js';
import { OpenJobs } from './open-jobs.js';
import { createPartsScanner } from './parts-scan.js';
import { PollWaits } from './poll-waits.js';
import { METADEFENDER_POOL_DEFAULTS } from './metadefender-config.js';
import {
  errorText,
  isFinished,
  isNotFoundDocument,
  isOutdated,
  isResultDocument,
  mapResult,
  resultCode,
  sanitizedOutput,
  submitFailure,
  type CoreVerdict,
  type SanitizedOutput,
} from './result-map.js';
import { submitHeaders, USER_AGENT, type SubmitMeta } from './submit-headers.js';

export interface MetaDefenderBackendOptions {
  readonly name: string;
  /** Base URLs of the Core servers, e.g. `http://core-1:8008`. Non-empty. */
  readonly endpoints: readonly string[];
  /** '' = send no apikey header. */
  readonly apikey: string;
  /** Workflow rule name; '' = the server's default. */
  readonly rule: string;
  /** Whole scan: hash, upload, polling, download. */
  readonly timeoutMs: number;
  readonly pollInitialMs: number;
  readonly pollMaxMs: number;
  /** Ask GET /hash/{sha256} first; a known clean or infected verdict skips the upload. */
  readonly hashLookup: boolean;
  /** Return Core's sanitized file as the new body when it made one. */
  readonly sanitize: boolean;
  /** 0 = no limit; larger bodies are 'too-large' without an upload. */
  readonly maxFileBytes: number;
  /** Where a downloaded sanitized file is spooled (memory up to memoryBytes, then a temp file). */
  readonly spool: { readonly memoryBytes: number; readonly directory: string };
  /**
   * The pool keys (src/config/pool-schema.ts); missing ones take METADEFENDER_POOL_DEFAULTS and
   * the shared defaults. health_interval_ms 0 = only the check at start.
   */
  readonly pool?: Partial<PoolSettings>;
  /** HTTP connections per endpoint; default 16. */
  readonly connections?: number;
  /** Told once per change of an endpoint's health (up ↔ down), with why. */
  readonly onHealthChange?: (change: EndpointHealthChange) => void;
}

/** Connection failures in a row while polling before the job counts as lost with its server. */
const MAX_POLL_FAILURES = 3;
/** How long create waits for the first health round (it sets `version`). */
const START_PROBE_BUDGET_MS = 3_000;

/**
 * A job's end on one server: final; worth one more try on another; or 'lost', the server no
 * longer knows the data_id (§3, §9) and the content should go up once more. And what it says
 * about the server.
 */
interface JobOutcome {
  readonly kind: 'final' | 'retry' | 'lost';
  readonly result: BackendResult;
  readonly health: LeaseOutcome;
}

/** How polling a job ended: finished (its result document), or a JobOutcome without one. */
type PollEnd = JobOutcome | { readonly kind: 'finished'; readonly doc: unknown };

interface ScanContext {
  readonly signal: AbortSignal;
  readonly fail: (kind: ScanErrorKind, message: string) => BackendResult;
  readonly elapsed: () => number;
  /** A thrown error as a result: timeout, abort or close by the deadline, else unreachable / backend-error. */
  readonly failFrom: (err: unknown) => BackendResult;
  /** Bytes of the body scanned: bounds the sanitized file taken back (sanitizedLimit). */
  readonly bodySize: number;
}

/**
 * The largest sanitized file taken back. §5 sets no size, and a Cloud link (§3) may point
 * anywhere, so without a bound a broken or hostile server fills the spool directory until
 * timeout_ms. Deep CDR rebuilds the same document, and a conversion (to PDF, say) may grow it a
 * few times: SANITIZED_GROWTH times what was sent, at least SANITIZED_MIN_LIMIT_BYTES. A set
 * max_file_bytes (the config's bound on bodies this backend handles) also bounds what comes back.
 * Over the limit: 'too-large', which the failure policy decides like an oversized upload.
 */
const SANITIZED_GROWTH = 4;
const SANITIZED_MIN_LIMIT_BYTES = 64 * 1024 * 1024;

export function sanitizedLimit(bodySize: number, maxFileBytes: number): number {
  const grown = Math.max(SANITIZED_MIN_LIMIT_BYTES, bodySize * SANITIZED_GROWTH);
  return maxFileBytes > 0 ? Math.min(grown, maxFileBytes) : grown;
}

/** Host and port of a base URL, for DNS mode. */
function locateUrl(text: string): HostPort {
  const url = new URL(text);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80 };
}

export async function createMetaDefenderBackend(options: MetaDefenderBackendOptions): Promise<Backend> {
  if (options.endpoints.length === 0) throw new Error(`backend ${options.name}: no MetaDefender endpoint configured`);
  const { name, timeoutMs } = options;
  const headers: Record<string, string> = { user_agent: USER_AGENT };
  if (options.apikey !== '') headers['apikey'] = options.apikey;
  const settings = poolSettings(METADEFENDER_POOL_DEFAULTS, options.pool);
  const pool = await PooledEndpoints.create<CoreNode>({
    endpoints: options.endpoints,
    settings,
    locate: locateUrl,
    ...(options.onHealthChange && { onHealthChange: options.onHealthChange }),
    open: (target) =>
      new CoreNode(
        new CoreEndpoint({
          url: target.configured,
          label: target.id,
          connections: options.connections ?? 16,
          headers,
          ...(target.pinned && { pin: target.address }),
        }),
        settings.health_timeout_ms,
      ),
    dispose: (node) => node.core.close(),
    check: ({ resource }, signal) => resource.check(signal),
    tuning: {
      // A stale "down" must not stop a scan that might succeed: with no server up, try them all.
      fallbackToUnhealthy: true,
      // One missed /readyz is not an outage, one good answer not a recovery.
      checksToDown: 2,
      checksToUp: 2,
    },
  });
  // The first round fixes `version` (it feeds the ISTag); a dead server must not hold up start.
  const firstRound = pool.checkNow().then(() => Promise.all(pool.endpoints.map((e) => e.resource.infoSettled)));
  await Promise.race([firstRound, sleep(START_PROBE_BUDGET_MS, undefined, { ref: false })]);

  const closing = new AbortController();
  // Accepted jobs and batches not ended yet: each given up is cancelled once (§3, §7).
  const jobs = new OpenJobs();

  async function scan(body: SpooledBody, meta: ScanMeta, signal: AbortSignal): Promise<BackendResult> {
    const started = performance.now();
    const elapsed = (): number => performance.now() - started;
    const fail = (kind: ScanErrorKind, message: string): BackendResult => ({ outcome: 'error', backend: name, durationMs: elapsed(), kind, message });
    if (signal.aborted) return fail('backend-error', `scan aborted: ${describe(signal.reason)}`);
    if (closing.signal.aborted) return fail('backend-error', 'backend is closed');
    // §2: Core answers an empty upload with 422; there is nothing to scan.
    if (body.size === 0) return { outcome: 'clean', backend: name, durationMs: 0 };

    // The caller's abort, our timeout or the backend closing, whichever comes first.
    const deadline = scanDeadline(timeoutMs, signal, closing.signal);
    const failFrom = (err: unknown): BackendResult => {
      if (deadline.timedOut()) return fail('timeout', `scan timed out after ${timeoutMs} ms`);
      if (signal.aborted) return fail('backend-error', `scan aborted: ${describe(signal.reason)}`);
      if (closing.signal.aborted) return fail('backend-error', 'backend closed during the scan');
      if (err instanceof PoolUnavailableError) {
        return fail(err.kind === 'overloaded' ? 'overloaded' : 'unreachable', `no MetaDefender endpoint available: ${err.message}`);
      }
      const e = classify(err, deadline.signal);
      return fail(e.code === MD_ERROR_CODES.unreachable ? 'unreachable' : 'backend-error', e.message);
    };
    const ctx: ScanContext = { signal: deadline.signal, fail, elapsed, failFrom, bodySize: body.size };
    try {
      const tooLarge = options.maxFileBytes > 0 && body.size > options.maxFileBytes;
      // The digest the transaction computed as the body arrived, when it did: a large spooled body
      // is not read a second time just to hash it (usesBodySha256 below asks for it).
      const sha256 = options.hashLookup ? (meta.bodySha256 ?? (await sha256OfSpooledBody(body, ctx.signal))) : undefined;
      // Without a lookup that might know it, an oversized body needs no server at all.
      if (tooLarge && sha256 === undefined) return fail('too-large', tooLargeMessage(body.size));
      return await withFailover(pool, ctx.signal, async (lease, attempt) => {
        const tried = await onEndpoint(lease.resource, attempt, body, meta, sha256, tooLarge, ctx);
        // The server that gave (or failed to give) the answer, for the access log and metrics; the
        // failure's text for the pool, should it eject the server.
        const detail = tried.value.outcome === 'error' ? tried.value.message : undefined;
        return { ...tried, value: { ...tried.value, endpoint: lease.endpoint }, ...(detail !== undefined && { detail }) };
      });
    } catch (err) {
      return failFrom(err);
    } finally {
      deadline.clear();
    }
  }

  function tooLargeMessage(size: number): string {
    return `body of ${size} bytes is over max_file_bytes (${options.maxFileBytes}); not uploaded`;
  }

  /**
   * One attempt on the leased server: the hash lookup (first attempt only: a miss there is
   * followed by the upload there), then the job. Never throws; a retryable end moves on.
   */
  async function onEndpoint(
    node: CoreNode,
    attempt: number,
    body: SpooledBody,
    meta: SubmitMeta,
    sha256: string | undefined,
    tooLarge: boolean,
    ctx: ScanContext,
  ): Promise<AttemptResult<BackendResult>> {
    try {
      if (attempt === 0 && sha256 !== undefined) {
        const known = await lookupHash(node, sha256, ctx);
        if (known) return { value: known, outcome: 'ok', retry: false };
      }
      if (tooLarge) return { value: ctx.fail('too-large', tooLargeMessage(body.size)), outcome: 'neutral', retry: false };
      const job = await runJob(node, body, meta, ctx);
      return { value: job.result, outcome: job.health, retry: job.kind === 'retry' };
    } catch (err) {
      // Our deadline or the caller's abort says nothing about the server; anything else does.
      return { value: ctx.failFrom(err), outcome: ctx.signal.aborted ? 'neutral' : 'failure', retry: false };
    }
  }

  /**
   * The job on `node`. A poll answered "Not Found" (§3) means the node restarted, or a balancer
   * sent the poll to another node (§9): the content has not been judged, and we still hold it
   * (§9: "keep the body until a final verdict"), so it goes up once more, to the same server —
   * which just answered, so it is alive. A second "Not Found" is final. Both uploads and all
   * polls run under the scan's signal, so the deadline bounds the pair.
   */
  async function runJob(node: CoreNode, body: SpooledBody, meta: SubmitMeta, ctx: ScanContext): Promise<JobOutcome> {
    const job = await submitAndFollow(node, body, meta, ctx, false);
    if (job.kind !== 'lost') return job;
    const again = await submitAndFollow(node, body, meta, ctx, true);
    return again.kind === 'lost' ? final(again.result) : again;
  }

  /** `POST /file` on `node` (§2), then the job's life on that same server. */
  async function submitAndFollow(node: CoreNode, body: SpooledBody, meta: SubmitMeta, ctx: ScanContext, resubmitted: boolean): Promise<JobOutcome> {
    const at = node.core.label;
    let reply: JsonReply;
    try {
      reply = await node.core.upload(body, submitHeaders(meta, { rule: options.rule }), ctx.signal);
    } catch (err) {
      const e = classify(err, ctx.signal);
      if (e.code !== MD_ERROR_CODES.unreachable) throw e;
      // The content may not have arrived; the next server gets all of it. Refused or dropped:
      // out of the pool for the cool-down.
      return { kind: 'retry', result: ctx.fail('unreachable', `${at}: upload failed: ${e.message}`), health: 'down' };
    }
    if (reply.status !== 200) {
      const failure = submitFailure(reply.status, errorText(reply.json));
      const result = ctx.fail(failure.kind, `${at}: ${failure.message}`);
      // Too busy counts towards eject_after; a refusal of ours (key, rule) says the server is fine.
      if (!failure.retryElsewhere) return final(result);
      return { kind: 'retry', result, health: 'failure' };
    }
    if (reply.json === undefined) return final(ctx.fail('backend-error', `${at}: malformed JSON answering the upload: ${reply.malformed}`), 'failure');
    const answer = reply.json as { data_id?: unknown; batch_id?: unknown } | null;
    const dataId = answer?.data_id;
    if (typeof dataId !== 'string' || dataId === '') {
      // A batch_id here is v5.22's implicit multipart batch (§1), which we never ask for; it would
      // run for nobody, so it is cancelled (§7).
      const batchId = answer?.batch_id;
      if (isUsableBatchId(batchId)) jobs.track((signal) => cancelBatch(node.core, batchId, signal)).cancel();
      const what = typeof batchId === 'string' ? 'a batch_id instead of a data_id' : 'no data_id';
      return final(ctx.fail('backend-error', `${at}: the upload answer carries ${what}`), 'failure');
    }
    return followJob(node, dataId, ctx, resubmitted);
  }

  /**
   * The life of an accepted job on `node`: polled until it ends, then mapped (and its sanitized
   * file fetched). A job given up on any other way — the deadline, the caller's abort, close(), a
   * poll answer that cannot be used, repeated busy answers, a server lost mid-job — may still run
   * on Core for nobody, so it is cancelled there (§3 Cancel), once, best effort, not awaited
   * (open-jobs.ts). A finished job, or one its server no longer knows, has nothing to cancel.
   */
  async function followJob(node: CoreNode, dataId: string, ctx: ScanContext, resubmitted: boolean): Promise<JobOutcome> {
    const job = jobs.track((signal) => node.core.json('POST', `/file/${encodeURIComponent(dataId)}/cancel`, signal));
    let end: PollEnd | undefined;
    try {
      end = await pollJob(node, dataId, ctx, resubmitted);
    } finally {
      if (end?.kind === 'finished' || end?.kind === 'lost') job.settle();
      else job.cancel();
    }
    return end.kind === 'finished' ? final(await finish(node, dataId, end.doc, ctx)) : end;
  }

  /** Polls `dataId` on `node` until it is finished, unknown, or given up. Throws on abort and broken answers. */
  async function pollJob(node: CoreNode, dataId: string, ctx: ScanContext, resubmitted: boolean): Promise<PollEnd> {
    const at = `${node.core.label} job ${dataId}`;
    const path = `/file/${encodeURIComponent(dataId)}`;
    const waits = new PollWaits(options.pollInitialMs, options.pollMaxMs);
    let failures = 0;
    // Each round sleeps at least poll_initial_ms and the signal ends the scan at timeout_ms, so
    // this bound is never the one that stops it; it only makes the loop visibly finite.
    const maxPolls = Math.ceil(timeoutMs / Math.max(1, options.pollInitialMs)) + 16;
    for (let round = 0; round < maxPolls; round++) {
      await waits.next(ctx.signal);
      let reply: JsonReply;
      try {
        reply = await node.core.json('GET', path, ctx.signal);
      } catch (err) {
        const e = classify(err, ctx.signal);
        if (e.code !== MD_ERROR_CODES.unreachable) throw e;
        if (++failures < MAX_POLL_FAILURES) continue;
        // §9: a server that dies after accepting a job loses it; the content goes elsewhere.
        return { kind: 'retry', result: ctx.fail('unreachable', `${at}: polling failed ${failures} times: ${e.message}`), health: 'down' };
      }
      // §3, §9 (unconfirmed status): 404, or any status with {"<id>": "Not Found"}. Never clean:
      // runJob uploads the content once more.
      if (reply.status === 404 || isNotFoundDocument(reply.json)) {
        const why = resubmitted ? 'again, after the content was uploaded once more' : 'expired, restarted, or another node got the poll';
        const result = ctx.fail('backend-error', `${at}: the server that accepted the job no longer knows it (HTTP ${reply.status}); ${why}`);
        return { kind: 'lost', result, health: 'ok' };
      }
      if (reply.status === 200) {
        if (reply.json === undefined) return final(ctx.fail('backend-error', `${at}: malformed JSON in poll answer: ${reply.malformed}`), 'failure');
        const err = errorText(reply.json);
        if (err !== undefined && resultCode(reply.json) === undefined) return final(ctx.fail('backend-error', `${at}: ${err}`));
        if (!isResultDocument(reply.json)) {
          return final(ctx.fail('backend-error', `${at}: the poll answer is not a result: ${JSON.stringify(reply.json).slice(0, 120)}`));
        }
        failures = 0;
        if (isFinished(reply.json)) return { kind: 'finished', doc: reply.json };
        continue;
      }
      if (isTransientStatus(reply.status)) {
        const busy = reply.status === 503 || reply.status === 429;
        if (++failures < MAX_POLL_FAILURES) {
          waits.answered(reply.status, reply.retryAfterMs, timeoutMs - ctx.elapsed());
          continue;
        }
        return final(ctx.fail(busy ? 'overloaded' : 'backend-error', `${at}: polling got HTTP ${reply.status} ${failures} times${suffix(errorText(reply.json))}`), 'failure');
      }
      // 400/401/403/405...: our key or rights, not something waiting fixes.
      return final(ctx.fail('backend-error', `${at}: polling got HTTP ${reply.status}${suffix(errorText(reply.json))}`));
    }
    return final(ctx.fail('timeout', `${at}: still not finished after ${maxPolls} polls`), 'neutral');
  }

  /** A finished result → BackendResult; with sanitize on, Core's sanitized file replaces the body. */
  async function finish(node: CoreNode, dataId: string, doc: unknown, ctx: ScanContext): Promise<BackendResult> {
    const verdict = mapResult(doc);
    if (options.sanitize && (verdict.verdict === 'clean' || (verdict.verdict === 'infected' && verdict.byPolicy))) {
      const output = sanitizedOutput(doc);
      if (output) return fetchSanitized(node, dataId, output, verdict, ctx);
    }
    return toResult(verdict, ctx, sha256Field(doc));
  }

  /** §3: the Cloud-style link first, then `GET /file/converted/{data_id}` on the same server (§5). */
  async function fetchSanitized(node: CoreNode, dataId: string, output: SanitizedOutput, verdict: CoreVerdict, ctx: ScanContext): Promise<BackendResult> {
    const targets: ({ path: string } | { absoluteUrl: string })[] = [];
    if (output.from === 'link') targets.push({ absoluteUrl: output.url });
    targets.push({ path: `/file/converted/${encodeURIComponent(dataId)}` });
    const at = `${node.core.label} job ${dataId}`;
    const maxBytes = sanitizedLimit(ctx.bodySize, options.maxFileBytes);
    let why = '';
    for (const target of targets) {
      let got: DownloadReply;
      try {
        got = await node.core.download(target, { spool: options.spool, maxBytes }, ctx.signal);
      } catch (err) {
        // Our temp file failed (disk full, file size limit): another source would fail the same way.
        if (err instanceof SpoolError && !ctx.signal.aborted) {
          return ctx.fail('backend-error', `${at}: the sanitized file could not be stored: ${err.message}`);
        }
        const e = classify(err, ctx.signal);
        if (e.code === MD_ERROR_CODES.aborted) throw e;
        why = e.message;
        continue;
      }
      if (got.tooLarge) return ctx.fail('too-large', `${at}: the sanitized file is over ${maxBytes} bytes; not taken`);
      if (!got.file) {
        why = `HTTP ${got.status}${suffix(got.err)}`;
        continue;
      }
      const file = got.file;
      if (ctx.signal.aborted) {
        await file.dispose();
        throw new MetaDefenderError(MD_ERROR_CODES.aborted, 'aborted after the sanitized download');
      }
      // Content-Disposition of the download first, then post_processing.converted_destination.
      const fileName = file.fileName ?? output.fileName;
      return {
        outcome: 'sanitized',
        backend: name,
        durationMs: ctx.elapsed(),
        body: file.body,
        threats: verdict.verdict === 'infected' ? verdict.threats : [],
        ...(fileName !== undefined && { fileName }),
        ...(file.contentType !== undefined && { contentType: file.contentType }),
        dispose: file.dispose,
      };
    }
    // Core said it sanitized but the output cannot be had (retention, rights): the original
    // must not pass as if it were the cleaned file.
    return ctx.fail('backend-error', `${at}: sanitized file not available (${why})`);
  }

  /** §6: a finished, current clean or infected result for this content, else undefined (then upload). */
  async function lookupHash(node: CoreNode, sha256: string, ctx: ScanContext): Promise<BackendResult | undefined> {
    try {
      const extra: Record<string, string> = options.rule !== '' ? { rule: encodeURIComponent(options.rule) } : {};
      const reply = await node.core.json('GET', `/hash/${sha256}`, ctx.signal, extra);
      // Not found is {"<hash>": "Not Found"} with 200 (older) or 404 (newer): both mean "upload".
      if (reply.status !== 200 || reply.json === undefined || isNotFoundDocument(reply.json)) return undefined;
      const doc = reply.json;
      if (!isFinished(doc) || isOutdated(doc)) return undefined;
      // The sanitized output belongs to that earlier job, maybe on another server: scan afresh.
      if (options.sanitize && sanitizedOutput(doc)) return undefined;
      const verdict = mapResult(doc);
      return verdict.verdict === 'error' ? undefined : toResult(verdict, ctx, sha256);
    } catch (err) {
      const e = classify(err, ctx.signal);
      if (e.code === MD_ERROR_CODES.aborted) throw e;
      return undefined; // the lookup only saves work; the upload decides
    }
  }

  function toResult(verdict: CoreVerdict, ctx: ScanContext, sha256: string | undefined): BackendResult {
    const hash = sha256 !== undefined ? { sha256 } : {};
    switch (verdict.verdict) {
      case 'clean':
        return { outcome: 'clean', backend: name, durationMs: ctx.elapsed(), ...hash };
      case 'infected':
        return { outcome: 'infected', backend: name, durationMs: ctx.elapsed(), threats: verdict.threats, ...hash };
      case 'error':
        return ctx.fail(verdict.kind, verdict.message);
    }
  }

  return {
    name,
    get version() {
      return describeVersion(pool.endpoints.map((e) => e.resource));
    },
    scan,
    usesBodySha256: options.hashLookup,
    scanParts: createPartsScanner(pool, closing.signal, jobs, {
      backend: name,
      rule: options.rule,
      timeoutMs,
      pollInitialMs: options.pollInitialMs,
      pollMaxMs: options.pollMaxMs,
      maxFileBytes: options.maxFileBytes,
    }),
    status: () => pool.status(),
    close: async () => {
      closing.abort();
      // Before the servers' connections go: the scans would send these too late.
      await jobs.cancelAll();
      await pool.close();
    },
  };
}

/** The job's end; by default the server answered, so it is alive. */
function final(result: BackendResult, health: LeaseOutcome = 'ok'): JobOutcome {
  return { kind: 'final', result, health };
}

function sha256Field(doc: unknown): string | undefined {
  const value = (doc as { file_info?: { sha256?: unknown } } | null)?.file_info?.sha256;
  return typeof value === 'string' && /^[0-9a-f]{64}$/i.test(value) ? value.toLowerCase() : undefined;
}

function suffix(err: string | undefined): string {
  return err ? `: ${err}` : '';
}

function describe(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
