/**
 * One REQMOD/RESPMOD exchange, from its head to its access-log line (DESIGN.md steps 3–6).
 *
 * Lifecycle, driven by the Connection from decoder events:
 *   addHttpHead()* → beginBody() → writeBody()* → [previewEnded()] → bodyEnded() → respond()
 *   abort() may come at any point (client gone, timeout, protocol error).
 * The spool is disposed on every path; the access line is written exactly once.
 *
 * Normally the response is written by respond() after the whole body was read and scanned.
 * "Commit on idle" (specs/squid-interop.md, Recipe 1) is the exception: for RESPMOD without
 * Allow: 204, a silent body makes the transaction start its 200 answer early and release held
 * body bytes one at a time, because Debian's Squid 5.7 sends no more body until it sees adapted
 * bytes. A committed transaction can no longer show a block page: if the verdict is to block,
 * it cuts the answer (cut_after_commit: short of its Content-Length, or a close without the last
 * chunk) so the client never gets a complete file.
 * Trickle delivery (trickle.ts, off by default) starts the same early answer for large RESPMOD
 * bodies and forwards all but a held-back tail while the body arrives.
 *
 * The service's policy (rules, allow/deny lists; policy-tracker.ts) decides which backends scan,
 * or whether to allow or block without a scan, as early as its facts allow: streaming backends
 * open only once a scan rule is chosen, and an outcome settled by the end of a preview is
 * answered there without reading the rest of the body (RFC 3507 §4.5).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CRLF,
  chunkHeader,
  encodeChunk,
  encodeLastChunk,
  encodeResponseHead,
  encodeSimpleResponse,
  httpStatusCode,
  LAST_CHUNK,
  type HttpHead,
  type IcapRequestHead,
} from '../../protocol/index.js';
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../backends/backend.js';
import type { AccessRecord } from '../observability/access-log.js';
import type { Logger } from '../observability/logger.js';
import { Sha256Accumulator } from '../pipeline/hashing.js';
import { contentFacts, prepareContent, type PreparedContent } from '../pipeline/prepared-content.js';
import { scanContent, verdictCacheScope, type ContentScan } from '../pipeline/scan-content.js';
import { NO_STREAMS } from '../pipeline/run-scans.js';
import { BodySpool, SPOOL_ERROR_CODES, type SpoolError, type SpoolOptions } from '../pipeline/spool.js';
import type { SpooledBody } from '../pipeline/spooled-body.js';
import { partialRange, requestAttributes, type CompiledRule, type PolicyOutcome, type RequestAttributes } from '../policy/index.js';
import {
  byList,
  byRule,
  decide,
  failureAction,
  notScanned,
  planResponse,
  rewriteHttpHead,
  verdictLabel,
  type Decision,
  type ResponsePlan,
} from '../verdict/index.js';
import { NO_CONTENT_PLAN, planContent, type ContentPlan } from './content-plan.js';
import { contentScanFields, preparedContentFields } from './content-scan-record.js';
import { PolicyTracker } from './policy-tracker.js';
import { PerSecondResponseCache } from './response-cache.js';
import { commonHeaders } from './response-headers.js';
import type { ResponseSink } from './response-sink.js';
import type { Service } from './service-registry.js';
import { encodePartialContent, may206 } from './partial-content.js';
import { declaredLength, reachesTrickle, TrickleForwarder, trickleSettings, type TrickleSettings } from './trickle.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * How long a RESPMOD answer that carries a body of SQUID_PIPE_BYTES or more, without a
 * Content-Length, waits between its last data and its last chunk. Squid 5.7's bug 5550: when the
 * ICAP body ends while Squid's store still waits for its client to take earlier bytes, Squid may
 * end the client's transfer before it notes that the ICAP body ended, and a chunked download then
 * loses its final chunk although every byte arrived. With a Content-Length the client still has
 * every byte it was promised. Without one, the pause lets Squid store the rest first: 30 of 2,561
 * such downloads lost their final chunk without it, none of 2,216 with it (README, Squid).
 */
const LAST_CHUNK_PAUSE_MS = 20;
/** Squid's BodyPipe capacity (squid-interop.md): a smaller body fits in it whole (none of 41,297 lost its final chunk). */
const SQUID_PIPE_BYTES = 65_536;

/** The results of a transaction that scanned nothing: shared and frozen (#decideOn sets its own). */
const NO_RESULTS: readonly BackendResult[] = Object.freeze([]);

/** 204 answers, per service ISTag and decision headers (response-cache.ts). */
const NO_CONTENT_ANSWERS = new PerSecondResponseCache();

/** Within an ISTag: the decision header's value alone in the usual case, else every header. */
function noContentKey(headers: readonly (readonly [string, string])[]): string {
  if (headers.length === 1 && headers[0]![0] === 'X-ICAP-Bridge-Decision') return headers[0]![1];
  let key = '';
  for (const [name, value] of headers) key += `\n${name}: ${value}`;
  return key;
}


export interface TransactionInit {
  readonly id: string;
  readonly head: IcapRequestHead;
  readonly service: Service;
  readonly clientAddress: string;
  readonly spool: SpoolOptions;
  readonly sink: ResponseSink;
  readonly logger: Logger;
  /** When the request head arrived (performance.now() scale): the duration in the access line counts from it. */
  readonly startedAt: number;
  /** Called once with the access record when the transaction ends, whatever the path. */
  readonly onFinished: (record: AccessRecord) => void;
}

interface CommitPolicy {
  readonly idleMs: number;
  readonly maxBytes: number;
}

/** Logged (error) when a body's temp file fails: the disk is full, or a file size limit or an I/O error hit it. */
const SPOOL_FAILED_MESSAGE = 'spool failed: the body could not be stored, answered 500';

/** Why a transaction ended without a normal answer. */
export type AbortReason = 'client-disconnected' | 'body-timeout' | 'send-timeout' | 'protocol-error' | 'spool-error' | 'server-closing';

/**
 * The error answer the connection sent for a transaction that ended without its normal answer
 * (408 body timeout, 400 bad chunk, 413, 500): its access record carries this status and these
 * bytes. Null when nothing could be sent (the client was gone, or an answer had started).
 */
export interface ErrorAnswer {
  readonly status: number;
  readonly bytes: number;
}

export class Transaction {
  readonly id: string;
  readonly head: IcapRequestHead;
  readonly #init: TransactionInit;
  readonly #started: number;
  /**
   * Created on first use: most requests (OPTIONS-like REQMODs, small bodies) never hand a signal
   * to anyone, and an AbortController + AbortSignal per request was ~6 % of a null-body REQMOD.
   */
  #abortController: AbortController | null = null;
  #abortReason: AbortReason | null = null;
  #reqHdr: HttpHead | null = null;
  #resHdr: HttpHead | null = null;
  #spool: BodySpool | null = null;
  #trailers: Buffer | null = null;
  /** The whole body arrived inside the preview (`0; ieof`): §4.5 lets us answer 204 regardless of Allow. */
  #bodyInPreview = false;
  /** The policy settled the answer at the end of the preview; the rest of the body was never asked for. */
  #answeredInPreview = false;
  readonly #policy: PolicyTracker;
  #attrs: RequestAttributes | null = null;
  /** The outcome the answer was built from (for the access log). */
  #applied: PolicyOutcome | null = null;
  #finished = false;
  /** Set when the transaction ends on an error the connection answered (abort, endWithError). */
  #errorAnswer: ErrorAnswer | null = null;
  /**
   * respond() failed on a spool error or a bug: the connection answers 500 (if it still can) and
   * then calls endWithError(); the access record waits for that, so it carries what was sent.
   */
  #unrecordedFailure: (() => AccessRecord) | null = null;
  #bytesIn = 0;
  #bytesOut = 0;
  // Commit on idle: see the file comment.
  readonly #commit: CommitPolicy | null;
  #commitArmed = false;
  #committed = false;
  #bodyComplete = false;
  #lastBodyActivity = 0;
  #idleTimer: NodeJS.Timeout | null = null;
  /** The first max_bytes body bytes, copied: the only bytes ever released before the verdict. */
  #held: Buffer | null = null;
  #heldLength = 0;
  /** Body bytes already sent to the client (kicks). */
  #released = 0;
  #kicks = 0;
  /** Early writes (the commit head and kicks) in order; respond() waits for them. */
  #earlyWrites: Promise<void> | null = null;
  // Trickle delivery of large RESPMOD bodies (trickle.ts): starts the same early answer.
  readonly #trickleSettings: TrickleSettings | null;
  #trickle: TrickleForwarder | null = null;
  /** The whole body was asked for (100 Continue sent, or no preview): an early answer may start. */
  #restRequested = false;
  /** The HTTP response's Content-Length (null: none or not a number); read once. */
  #declaredLength: number | null | undefined = undefined;
  /**
   * Scans fed while the body arrives (clamd INSTREAM, upstream ICAP). null until the first opens:
   * most transactions open none, and a Map each was ≈ 200 B of a null-body REQMOD's ≈ 10 KB then.
   * Without one, the scan is handed run-scans.ts's shared, read-only NO_STREAMS.
   */
  #streams: Map<Backend, StreamingScan> | null = null;
  /** Consumers (spool, streams) that said "full"; the socket resumes when none is left. */
  #blockedConsumers = 0;
  #drainWaiter: (() => void) | null = null;
  /** A wait for the spool is registered: one is enough, however many writes said "full" meanwhile. */
  #waitingForSpool = false;
  /** Content-Encoding and multipart handling, decided at header time (content-plan.ts). */
  #content: ContentPlan = NO_CONTENT_PLAN;
  /** SHA-256 of the body as it arrives, for hash lists, the verdict cache key and backends' hash lookups: one pass, no second read. */
  #bodyHash: Sha256Accumulator | null = null;
  /** The body-end scan (scan-content.ts): its spools, cache use, parts and batches. */
  #contentScan: ContentScan | null = null;
  /** The body decoded and split before the policy's final say (#decideOnContent); usually null. */
  #prepared: PreparedContent | null = null;

  constructor(init: TransactionInit) {
    this.#init = init;
    this.#started = init.startedAt;
    this.id = init.id;
    this.head = init.head;
    const commit = init.service.config.commit_on_idle;
    // Recipe 1 step 2: with Allow: 204 the whole body fits Squid's pipe, no stall is possible.
    this.#commit = commit.enabled && init.head.method === 'RESPMOD' && !init.head.allow.has('204')
      ? { idleMs: commit.idle_ms, maxBytes: commit.max_bytes }
      : null;
    this.#trickleSettings = init.head.method === 'RESPMOD' ? trickleSettings(init.service.config.trickle) : null;
    this.#policy = new PolicyTracker(init.service.policy, () => this.#attributes());
  }

  /** Request attributes for rules and lists; built once, after the HTTP heads are in. */
  #attributes(): RequestAttributes {
    this.#attrs ??= requestAttributes({
      icapMethod: this.head.method === 'REQMOD' ? 'REQMOD' : 'RESPMOD',
      peer: this.#init.clientAddress,
      icapHeaders: this.head.headers,
      reqHdr: this.#reqHdr,
      resHdr: this.#resHdr,
    });
    return this.#attrs;
  }

  get aborted(): boolean {
    return this.#abortReason !== null;
  }

  /** The signal scans and streams get; aborted already if the transaction was. */
  #signal(): AbortSignal {
    if (this.#abortController === null) {
      this.#abortController = new AbortController();
      if (this.#abortReason !== null) this.#abortController.abort(this.#abortReason);
    }
    return this.#abortController.signal;
  }

  addHttpHead(head: HttpHead): void {
    if (head.section === 'req-hdr') this.#reqHdr = head;
    else this.#resHdr = head;
  }

  beginBody(): void {
    // An announced length over spool.memory_bytes sends the body to disk from its first byte.
    const expectedBytes = declaredLength(this.head.method === 'REQMOD' ? this.#reqHdr : this.#resHdr);
    this.#spool = new BodySpool(this.#init.spool, expectedBytes);
    const method = this.head.method === 'REQMOD' ? 'REQMOD' : 'RESPMOD';
    this.#content = planContent({ method, reqHdr: this.#reqHdr, resHdr: this.#resHdr, service: this.#init.service.config });
    const service = this.#init.service;
    if (service.verdictCache !== null || service.backendsUseBodySha256 || this.#policy.needsSha256) this.#bodyHash = new Sha256Accumulator();
    const rule = this.#policy.beginBody(this.#wrapped);
    if (rule !== null) this.#openStreams(rule, []);
    // Squid waits for 100 Continue after a preview and sends nothing meanwhile; the idle watch
    // starts once the rest of the body is flowing (or at once without a preview).
    if (this.head.preview === null) this.#armCommit();
    if (this.head.preview === null) this.#requestedRest();
  }

  /** Returns false when the caller must stop reading until `onDrain` fires (disk backpressure). */
  writeBody(data: Buffer): boolean {
    if (this.#commit !== null) {
      this.#lastBodyActivity = performance.now();
      if (this.#heldLength < this.#commit.maxBytes) {
        this.#held ??= Buffer.alloc(this.#commit.maxBytes);
        this.#heldLength += data.copy(this.#held, this.#heldLength, 0, this.#commit.maxBytes - this.#heldLength);
      }
    }
    // A scan rule chosen by these first bytes (file type) opens its streams now, fed what came before.
    const chosen = this.#policy.onBody(data);
    if (chosen !== null) this.#openStreams(chosen.rule, chosen.replay);
    // The same bytes go to the spool and to every streaming scan; the caller stops reading the
    // socket until every consumer that said "full" has drained (STYLE.md "Streams and backpressure").
    this.#bodyHash?.update(data);
    const spool = this.#spool!;
    if (!spool.write(data) && !this.#waitingForSpool) {
      // Ended by a failure too (disk full): the connection then answers 500 (spoolFailure).
      this.#waitingForSpool = true;
      this.#markBlocked((done) =>
        spool.onWritable(() => {
          this.#waitingForSpool = false;
          done();
        }),
      );
    }
    if (this.#streams !== null) {
      for (const stream of this.#streams.values()) {
        if (!stream.write(data)) this.#markBlocked((done) => stream.onDrain(done));
      }
    }
    this.#trickleOnBody();
    return this.#blockedConsumers === 0;
  }

  /** Streaming backends of the chosen scan rule start here; `replay` is the body so far. */
  #openStreams(rule: CompiledRule, replay: readonly Buffer[]): void {
    // Encoded bodies are scanned decoded at the end; a stream would only see compressed bytes.
    if (this.#content.suppressStreams) return;
    for (const backend of this.#init.service.backendsFor(rule)) {
      if (!backend.openStream || this.#streams?.has(backend) === true) continue;
      const stream = backend.openStream(this.#scanMeta(), this.#signal());
      (this.#streams ??= new Map()).set(backend, stream);
      for (const chunk of replay) {
        if (!stream.write(chunk)) this.#markBlocked((done) => stream.onDrain(done));
      }
    }
  }

  /** Why the body's temp file failed (disk full, file size limit, I/O error); null while it has not. */
  get spoolFailure(): SpoolError | null {
    return this.#spool?.failure ?? null;
  }

  /**
   * The temp file failed while the body still arrives: logged at error level, then aborted as
   * spool-error (temp file removed). The connection answers 500 and reads no more of the body.
   */
  abortForSpoolFailure(answer: ErrorAnswer | null = null): void {
    this.#logSpoolFailure(this.spoolFailure!);
    this.abort('spool-error', answer);
  }

  #logSpoolFailure(err: SpoolError): void {
    this.#init.logger.error({ err, code: err.code, transaction_id: this.id }, SPOOL_FAILED_MESSAGE);
  }

  /** Calls `listener` once every consumer that reported "full" has drained, or the spool failed. */
  onDrain(listener: () => void): void {
    if (this.#blockedConsumers === 0) listener();
    else this.#drainWaiter = listener;
  }

  #markBlocked(register: (done: () => void) => void): void {
    this.#blockedConsumers++;
    register(() => {
      this.#blockedConsumers--;
      if (this.#blockedConsumers === 0 && this.#drainWaiter !== null) {
        const waiter = this.#drainWaiter;
        this.#drainWaiter = null;
        waiter();
      }
    });
  }

  /**
   * Returns false when the rest of the body is not wanted: the policy settled the answer on what
   * the preview showed (a block, or an allow that may be a 204 or a 206 here). The caller then
   * skips the body instead of sending 100 Continue, and respond() answers at once.
   */
  previewEnded(ieof: boolean): boolean {
    this.#bodyInPreview = ieof;
    if (ieof) return true;
    const cfg = this.#init.service.config;
    if (this.#policy.settledAfterPreview(cfg.allow_204 || this.#may206(true))) {
      this.#answeredInPreview = true;
      return false;
    }
    this.#armCommit();
    this.#requestedRest();
    return true;
  }

  // ── 206 Partial Content (partial-content.ts) ───────────────────────────────────────────────

  #may206(answeringPreview: boolean): boolean {
    const cfg = this.#init.service.config;
    const head = this.head.method === 'REQMOD' ? this.#reqHdr : this.#resHdr;
    return may206({
      serviceAllows206: cfg.allow_206,
      allow: this.head.allow,
      hasBodyAndHead: this.#spool !== null && head !== null,
      answeringPreview,
    });
  }

  // ── trickle delivery (trickle.ts) ──────────────────────────────────────────────────────────

  /** The client was asked for the whole body; the early answer's head may follow the 100 Continue. */
  #requestedRest(): void {
    this.#restRequested = true;
    this.#trickleOnBody();
  }

  /** After each body write: forward what the hold-back allows, or start trickling once the body is large. */
  #trickleOnBody(): void {
    if (this.#trickle !== null) {
      this.#trickle.pump();
      return;
    }
    const settings = this.#trickleSettings;
    const spool = this.#spool;
    if (settings === null || spool === null || !this.#restRequested || this.aborted) return;
    if (!reachesTrickle(settings, spool.size, this.#responseLength())) return;
    // A block the headers already settled (a deny rule or list) keeps its block page.
    if (this.#policy.settledAfterPreview(false)) return;
    const trickle = new TrickleForwarder({
      source: spool,
      holdBackBytes: settings.holdBackBytes,
      startAt: this.#released,
      write: (...buffers) => this.#write(...buffers),
    });
    this.#trickle = trickle;
    const head = this.#committed ? null : this.#committedHead('trickle');
    this.#committed = true;
    this.#init.logger.debug({ transaction_id: this.id, body_bytes: spool.size }, 'trickle delivery started');
    // Always queued (a then-callback), so the head follows the 100 Continue the connection writes
    // right after previewEnded() returns, and any kick already queued.
    this.#earlyWrites = (this.#earlyWrites ?? Promise.resolve())
      .then(async () => {
        if (head !== null) await this.#write(head);
        trickle.begin();
      })
      .catch(() => {});
  }

  /** The early 200: the original HTTP head (Content-Length kept, so clients can tell a cut), no verdict yet. */
  #committedHead(reason: string): Buffer {
    return encodeResponseHead({
      status: 200,
      headers: [...commonHeaders(this.#init.service.istag), ['X-ICAP-Bridge-Decision', `pending; reason=${reason}`]],
      resHdr: this.#resHdr?.raw,
      body: 'res-body',
    });
  }

  bodyEnded(trailers: Buffer | null): void {
    this.#trailers = trailers;
    this.#stopCommitWatch();
  }

  // ── commit on idle ─────────────────────────────────────────────────────────────────────────

  #armCommit(): void {
    if (this.#commit === null || this.#commitArmed) return;
    this.#commitArmed = true;
    this.#lastBodyActivity = performance.now();
    this.#scheduleIdleCheck(this.#commit.idleMs);
  }

  #scheduleIdleCheck(delayMs: number): void {
    this.#idleTimer = setTimeout(() => this.#onIdleCheck(), Math.max(1, delayMs));
    this.#idleTimer.unref();
  }

  #stopCommitWatch(): void {
    this.#bodyComplete = true;
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  #onIdleCheck(): void {
    this.#idleTimer = null;
    const commit = this.#commit!;
    if (this.#bodyComplete || this.aborted || this.#init.sink.closed) return;
    const silentFor = performance.now() - this.#lastBodyActivity;
    if (silentFor < commit.idleMs) {
      this.#scheduleIdleCheck(commit.idleMs - silentFor);
      return;
    }
    // Recipe 1 step 3: commit once, then one held byte per idle gap while the budget lasts.
    // Each adapted byte makes Squid's client side ask for more, which wakes its parked origin read.
    const writes: Buffer[] = [];
    if (!this.#committed) {
      this.#committed = true;
      writes.push(this.#committedHead('committed-on-idle'));
    }
    if (this.#trickle !== null) {
      // Trickle delivery took over (trickle.ts): a kick lets one more byte past its hold-back line.
      if (this.#trickle.kick()) this.#kicks += 1;
    } else if (this.#released < this.#heldLength) {
      writes.push(encodeChunk(this.#held!.subarray(this.#released, this.#released + 1)));
      this.#released += 1;
      this.#kicks += 1;
    }
    if (writes.length > 0) {
      this.#earlyWrites = (this.#earlyWrites ?? Promise.resolve()).then(() => this.#write(...writes)).catch(() => {});
    }
    this.#lastBodyActivity = performance.now();
    // Without trickling each kick released one byte, so kicks and released bytes are the same count.
    if (this.#kicks < commit.maxBytes) this.#scheduleIdleCheck(commit.idleMs);
  }

  /**
   * The request is complete: scan, decide, write the answer. Null when the answer went out at once:
   * a request without a body needs no scan and, unless the socket pushes back, no promise either.
   * Then the connection takes its next request in the same turn. (Two async functions and the
   * await between them were ≈ 1.2 KB of the ≈ 10 KB a null-body REQMOD allocated then, and a turn of the
   * microtask queue; fewer allocations mean rarer scavenges, whose pauses a p99 feels.)
   * Throws or rejects only on an internal error (a bug), already logged and recorded.
   */
  respond(bytesIn: number): Promise<void> | null {
    this.#bytesIn = bytesIn;
    this.#stopCommitWatch();
    // No body: no spool to end or free, no scan, no early writes (commit and trickle need a body).
    if (this.#spool === null && this.#earlyWrites === null && !this.#committed) return this.#respondWithoutBody();
    return this.#respondToBody();
  }

  #respondWithoutBody(): Promise<void> | null {
    let decision: Decision | null = null;
    let plan: ResponsePlan | null = null;
    try {
      decision = this.#decideWithoutBody();
      if (this.aborted) return null;
      plan = this.#plan(decision);
      const writing = plan.kind === 'no-content' ? this.#writeNoContent(plan.icapHeaders) : this.#writePlan(plan, null);
      if (writing === null) {
        this.#finish(this.#record(plan, decision, 'answered'));
        return null;
      }
      return this.#finishWhenWritten(writing, plan, decision);
    } catch (err) {
      this.#failed(err, plan, decision);
      return null;
    }
  }

  async #finishWhenWritten(writing: Promise<void>, plan: ResponsePlan, decision: Decision): Promise<void> {
    try {
      await writing;
      this.#finish(this.#record(plan, decision, 'answered'));
    } catch (err) {
      this.#failed(err, plan, decision);
    }
  }

  /** #decide for a request without a body: a list, a rule or "not scanned", never a scan. */
  #decideWithoutBody(): Decision {
    const decided = this.#decide(null);
    if (decided instanceof Promise) throw new Error('a scan was planned for a request without a body'); // #decide scans only a non-empty body
    return decided;
  }

  async #respondToBody(): Promise<void> {
    let body: SpooledBody | null = null;
    let decision: Decision | null = null;
    let plan: ResponsePlan | null = null;
    try {
      body = this.#spool ? await this.#spool.end() : null;
      this.#trickle?.pump(); // all of it is on disk now: up to the hold-back line while the scan runs
      // A decision that needs no scan (a list, a rule, an empty body) comes without a promise: no extra turn.
      const decided = this.#decide(body);
      decision = decided instanceof Promise ? await decided : decided;
      if (this.aborted) return;
      if (this.#earlyWrites !== null) await this.#earlyWrites; // none for most: no await, no extra turn
      if (this.#committed) {
        await this.#finishCommitted(decision, body);
        return;
      }
      plan = this.#plan(decision);
      if (plan.kind === 'no-content') {
        const drained = this.#writeNoContent(plan.icapHeaders);
        if (drained !== null) await drained;
      } else {
        await this.#writePlan(plan, body);
      }
      this.#finish(this.#record(plan, decision, 'answered'));
    } catch (err) {
      // After an abort, what fails is what the abort took away (the spool disposed while end()
      // closed its file, the scans cut): the abort's own record says what happened.
      if (this.aborted) return;
      this.#failed(err, plan, decision);
    } finally {
      void this.#trickle?.stop(); // stopped already unless the answer failed
      // Awaited only when there is something to free: every await costs a turn of the microtask
      // queue, and most transactions (a clean body) have nothing here but the spool.
      if (this.#spool !== null) await this.#spool.dispose();
      if (this.#contentScan !== null) await this.#contentScan.dispose();
      if (this.#prepared !== null) await this.#prepared.dispose(); // the same spools when scanned: idempotent
      const sanitized = this.#results.filter((r) => r.outcome === 'sanitized');
      if (sanitized.length > 0) await Promise.all(sanitized.map((r) => r.dispose().catch(() => {})));
    }
  }

  #plan(decision: Decision): ResponsePlan {
    return planResponse(decision, {
      method: this.head.method === 'REQMOD' ? 'REQMOD' : 'RESPMOD',
      may204: this.#bodyInPreview || this.#answeredInPreview || this.head.allow.has('204'),
      serviceAllows204: this.#init.service.config.allow_204,
      may206: this.#may206(this.#answeredInPreview),
      transactionId: this.id,
      serviceName: this.#init.service.name,
      url: this.#url() ?? '',
      blockPageTemplate: this.#init.service.blockPageTemplate,
      rule: this.#ruleName(),
      cacheHit: this.#contentScan?.cache === 'hit',
    });
  }

  /**
   * The answer failed: a client gone is logged as such; a spool that could not hold the body (disk
   * full) as that, and rethrown (the connection answers 500); anything else is a bug, logged and
   * rethrown. A rethrown failure is recorded by endWithError(), once the connection knows whether
   * its 500 went out.
   */
  #failed(err: unknown, plan: ResponsePlan | null, decision: Decision | null): void {
    const code = (err as { code?: string }).code;
    if (code === 'ICAP_ERR_CLIENT_GONE') {
      this.#finish(this.#record(plan, decision, 'client-disconnected'));
      return;
    }
    if (code === SPOOL_ERROR_CODES.io) {
      this.#logSpoolFailure(err as SpoolError);
      this.#unrecordedFailure = () => this.#record(plan, decision, 'spool-error');
      throw err;
    }
    this.#init.logger.error({ err, transaction_id: this.id }, 'transaction failed');
    this.#unrecordedFailure = () => this.#record(plan, decision, 'internal-error');
    throw err;
  }

  /**
   * respond() threw or rejected, and the connection sent `answer` (null: nothing). Writes the
   * failure's access record with it; does nothing when no failure waits (the record is written).
   */
  endWithError(answer: ErrorAnswer | null): void {
    const unrecorded = this.#unrecordedFailure;
    if (unrecorded === null) return;
    this.#unrecordedFailure = null;
    this.#errorAnswer = answer;
    this.#finish(unrecorded());
  }

  /**
   * Recipe 1 step 4, after a commit: clean → the rest of the body and the last chunk; block → a
   * cut the client can see (a sanitized copy cannot be sent any more: the original head and bytes
   * are out, so the original is cut like a block). The cut (cut_after_commit):
   *  - short-body, when the head announced a Content-Length: the last chunk now, the body short
   *    of it. The proxy cuts the client's transfer, and the ICAP answer itself was well formed:
   *    Squid counts a dropped ICAP connection as a service failure and, past
   *    icap_service_failure_limit (10), suspends the service for everyone (squid-interop.md).
   *  - otherwise, close without the last chunk: nothing else tells a client it got less.
   */
  async #finishCommitted(decision: Decision, body: SpooledBody | null): Promise<void> {
    const trickle = this.#trickle;
    if (decision.action === 'allow') {
      // Trickled bytes are out; the rest (at least the held-back tail) follows from the spool.
      if (trickle !== null) {
        await trickle.stop();
        this.#released = trickle.forwarded;
      }
      if (body !== null && body.size > this.#released) {
        for await (const chunk of body.createReadStream(this.#released) as AsyncIterable<Buffer>) {
          await this.#write(chunkHeader(chunk.length), chunk, CRLF);
        }
      }
      await this.#pauseBeforeLastChunk(body?.size ?? 0);
      await this.#write(encodeLastChunk(null, this.#trailers));
      this.#finish(this.#record(null, decision, 'answered-after-commit'));
      return;
    }
    const declared = this.#responseLength();
    const shortBody = this.#init.service.config.cut_after_commit === 'short-body' && declared !== null;
    const stopped = trickle?.stop();
    // The last chunk must follow the trickle's last write; a close need not wait for it.
    if (shortBody) await stopped;
    if (trickle !== null) {
      this.#released = trickle.forwarded;
      // X-ICAP-Bridge-Decision went out as "pending" with the head; the verdict is only ours to log.
      this.#init.logger.info(
        { transaction_id: this.id, verdict: verdictLabel(decision), reason: decision.reason, released_bytes: this.#released },
        'trickled answer cut: blocked by truncation',
      );
    }
    if (shortBody && this.#released < declared) {
      // A client gone meanwhile fails this write: recorded as client-disconnected (#failed).
      await this.#write(LAST_CHUNK);
      this.#finish(this.#record(null, decision, 'blocked-by-truncation'));
      return;
    }
    // No Content-Length, cut_after_commit: close, or one already reached (a lying one): only a close cuts.
    this.#init.sink.destroy();
    // Logged before the socket's 'close' can turn this into an abort ("client-disconnected").
    this.#finish(this.#record(null, decision, 'blocked-by-truncation'));
    await stopped; // a write waiting for the client fails at once on the destroyed socket; then the spool may go
  }

  /**
   * Ends the transaction without its answer; frees the spool; logs it as aborted (or error, for a
   * spool failure), never as clean. `answer`: the error answer the connection sent in its place.
   */
  abort(reason: AbortReason, answer: ErrorAnswer | null = null): void {
    this.#stopCommitWatch();
    void this.#trickle?.stop();
    if (this.#finished || this.aborted) return;
    if (this.#unrecordedFailure !== null) {
      // respond() failed and the connection closes before it could answer: the failure is what happened.
      this.endWithError(null);
      return;
    }
    this.#abortReason = reason;
    this.#errorAnswer = answer;
    this.#abortController?.abort(reason);
    this.#abortStreams(reason);
    const record = this.#record(null, null, reason);
    // Logged once the temp file is gone, so an "aborted" line means everything was freed.
    const dispose = this.#spool?.dispose() ?? Promise.resolve();
    void dispose.catch(() => {}).finally(() => this.#finish(record));
  }

  #abortStreams(reason: string): void {
    // Most transactions open no stream: nothing to iterate, and no Map.clear(), which allocates a
    // fresh table even for an empty Map (50-70 ns per call in a micro-benchmark, BENCHMARKS.md,
    // Session 19: small, but every REQMOD without a body paid it).
    if (this.#streams === null) return;
    for (const stream of this.#streams.values()) stream.abort(reason);
    // Emptied, not dropped: scanContent holds this Map and asks for the abort (abortStreams below).
    this.#streams.clear();
  }

  /** The decision, or a promise of it when a scan must run (the only asynchronous part). */
  #decide(body: SpooledBody | null): Decision | Promise<Decision> {
    if (this.#wrapped && body !== null && body.size > 0 && !this.#answeredInPreview && this.#policy.needsContentFacts) {
      return this.#decideOnContent(body);
    }
    return this.#act(this.#policy.finish(body?.size ?? 0, this.#answeredInPreview, () => this.#bodyHash?.hex()), body);
  }

  /** The body wraps the file a user gets: encoded, or a multipart upload (content-plan.ts). */
  get #wrapped(): boolean {
    return this.#content.decode !== null || this.#content.multipart !== null;
  }

  /**
   * An encoded or multipart body under a policy that asks what it holds (a file type, a hash):
   * decoded and split first (prepared-content.ts), so that a gzip-encoded exe or an exe in an
   * upload's part meets the rules and lists an exe meets. The scan then reuses what was prepared.
   */
  async #decideOnContent(body: SpooledBody): Promise<Decision> {
    const prepared = await prepareContent({
      body,
      bodySha256: this.#bodyHash?.hex() ?? null,
      signal: () => this.#signal(),
      decode: this.#content.decode,
      multipart: this.#content.multipart,
      spool: this.#init.spool,
    });
    this.#prepared = prepared; // freed at the end of #respondToBody, whatever the outcome
    const facts = await contentFacts(prepared);
    return this.#act(this.#policy.finish(body.size, false, () => this.#bodyHash?.hex(), facts), body);
  }

  /** What the policy's final outcome means for this body: a list's or rule's answer, or a scan. */
  #act(outcome: PolicyOutcome, body: SpooledBody | null): Decision | Promise<Decision> {
    this.#applied = outcome;
    if (outcome.kind === 'pending') throw new Error('policy undecided with the whole body known'); // impossible: the implicit rule matches all
    if (outcome.kind === 'list') {
      this.#abortStreams(`${outcome.hit.list} entry`);
      return byList(outcome.action, outcome.hit.list, outcome.hit.entry);
    }
    const rule = outcome.rule;
    if (rule.action !== 'scan') {
      this.#abortStreams(`rule ${rule.name ?? ''}: ${rule.action}`);
      return byRule(rule.action, rule.name ?? this.#init.service.name);
    }
    // Streams opened for a rule that the real size then ruled out are not needed any more.
    const backends = this.#init.service.backendsFor(rule);
    if (this.#streams !== null) {
      for (const [backend, stream] of this.#streams) {
        if (!backends.includes(backend)) {
          stream.abort('another rule applies');
          this.#streams.delete(backend);
        }
      }
    }
    // Empty bodies are clean without a scan: there is nothing an engine could find.
    if (body === null || body.size === 0) {
      this.#abortStreams('empty body');
      return notScanned(body === null ? 'no body' : 'empty body');
    }
    return this.#scanAndDecide(body, rule, backends);
  }

  /** The scan and the decision on it; without a promise when the scan needs none (scanContent). */
  #scanAndDecide(body: SpooledBody, rule: CompiledRule, backends: readonly Backend[]): Decision | Promise<Decision> {
    const cache = this.#init.service.verdictCache;
    const scan = scanContent({
      backends,
      body,
      bodySha256: this.#bodyHash?.hex() ?? null,
      meta: () => this.#scanMeta(),
      signal: () => this.#signal(),
      streams: this.#streams ?? NO_STREAMS,
      abortStreams: (reason) => this.#abortStreams(reason),
      decode: this.#content.decode,
      multipart: this.#content.multipart,
      spool: this.#init.spool,
      cache: cache === null ? null : { cache, context: verdictCacheScope(backends, this.#init.service.name, rule.name) },
      ...(this.#prepared !== null && { prepared: this.#prepared }),
    });
    return scan instanceof Promise ? scan.then((s) => this.#decideOn(s, rule)) : this.#decideOn(scan, rule);
  }

  #decideOn(scan: ContentScan, rule: CompiledRule): Decision {
    this.#contentScan = scan;
    const results = scan.results.map((r) => r.result);
    this.#results = results;
    // Backends that ran now; cached verdicts and content outcomes are in `cache` and scan_errors.
    const scanned: AccessRecord['scans'] = [];
    for (const { result: r, part, synthetic } of scan.results) {
      if (synthetic !== undefined) continue;
      // Built field by field (not with conditional spreads, slow in V8), in the access line's order.
      const line: AccessRecord['scans'][number] = { backend: r.backend, outcome: '', ms: 0 };
      if (r.endpoint !== undefined) line.endpoint = r.endpoint;
      line.outcome = r.outcome === 'error' ? `error:${r.kind}` : r.outcome;
      line.ms = Math.round(r.durationMs);
      if (part !== undefined) line.part = part;
      scanned.push(line);
    }
    this.#scanResults = scanned;
    return decide(results, rule.onError, scan.results.map((r) => r.part));
  }

  /** The configured rule that applied, if one did (not the service's implicit rule). */
  #ruleName(): string | undefined {
    const o = this.#applied;
    return o?.kind === 'rule' && o.rule.name !== null ? o.rule.name : undefined;
  }

  /** Access-log fields of the policy stage: which rule or list, what it did, each error's fate. */
  #policyFields(decision: Decision | null): Partial<AccessRecord> {
    const o = this.#applied;
    const fields: Partial<AccessRecord> = {};
    if (o === null || o.kind === 'pending' || decision === null) return fields;
    if (o.kind === 'list') return { action: o.action, list: o.hit.list, list_entry: o.hit.entry };
    const rule = this.#ruleName();
    if (rule !== undefined) fields.rule = rule;
    fields.action = o.rule.action;
    if ('errors' in decision && decision.errors.length > 0) {
      fields.error_decisions = decision.errors.map((e) => ({ backend: e.backend, kind: e.kind, decision: failureAction(o.rule.onError, e.kind) }));
    }
    return fields;
  }

  #scanResults: AccessRecord['scans'] = [];
  /** Every backend result, kept so sanitized copies (temp files) are freed on every path. */
  #results: readonly BackendResult[] = NO_RESULTS;

  #meta: ScanMeta | undefined;
  /** Built once, when the first backend needs it (the encapsulated heads are parsed by then). */
  #scanMeta(): ScanMeta {
    return (this.#meta ??= this.#buildScanMeta());
  }

  #buildScanMeta(): ScanMeta {
    // Plain assignments rather than conditional spreads: this runs for every scan, and V8 copies a
    // spread object through a generic (slow) path.
    const httpHeads: { request?: Buffer; response?: Buffer } = {};
    if (this.#reqHdr) httpHeads.request = this.#reqHdr.raw;
    if (this.#resHdr) httpHeads.response = this.#resHdr.raw;
    const meta: Mutable<ScanMeta> = {
      transactionId: this.id,
      method: this.head.method === 'REQMOD' ? 'REQMOD' : 'RESPMOD',
      clientAddress: this.#init.clientAddress,
      httpHeads,
    };
    const url = this.#url();
    if (url !== undefined) meta.url = url;
    const contentType = (this.#resHdr ?? this.#reqHdr)?.headers.get('Content-Type');
    if (contentType !== undefined) meta.contentType = contentType;
    return meta;
  }

  /** The URL of the encapsulated HTTP request line (`GET http://x/y HTTP/1.1`). */
  #url(): string | undefined {
    const line = this.#reqHdr?.startLine;
    if (line === undefined) return undefined;
    const start = line.indexOf(' ');
    if (start < 0) return undefined;
    const end = line.indexOf(' ', start + 1);
    return end < 0 ? line.slice(start + 1) : line.slice(start + 1, end);
  }

  /** The range the body is a piece of (policy/byte-range.ts); the rules' attributes have it when built. */
  #partialRange(): string | undefined {
    if (this.#spool === null) return undefined; // no body, no piece of one
    if (this.#attrs !== null) return this.#attrs.partial;
    return partialRange(this.head.method === 'REQMOD' ? 'REQMOD' : 'RESPMOD', this.#reqHdr, this.#resHdr);
  }

  async #writePlan(plan: ResponsePlan, body: SpooledBody | null): Promise<void> {
    const sink = this.#init.sink;
    const headers = [...commonHeaders(this.#init.service.istag), ...plan.icapHeaders];
    switch (plan.kind) {
      case 'no-content': {
        // respond() writes 204s itself (no await on the common path); here for completeness.
        const drained = this.#writeNoContent(plan.icapHeaders);
        if (drained !== null) await drained;
        return;
      }
      case 'block':
        // REQMOD: request satisfaction (§4.8.2) — we answer the HTTP request ourselves. RESPMOD: the
        // 403 page replaces the origin response. Either way an encapsulated HTTP response.
        await this.#write(
          encodeResponseHead({ status: 200, headers, resHdr: plan.httpHead, body: 'res-body' }),
          encodeChunk(plan.httpBody),
          LAST_CHUNK,
        );
        return;
      case 'replace': {
        // The engine's rewritten copy goes out instead of the original, with a head that
        // describes it (Content-Length, Content-Type, Content-Disposition).
        const isReqmod = this.head.method === 'REQMOD';
        const { replacement } = plan;
        const original = (isReqmod ? this.#reqHdr : this.#resHdr)?.raw ?? (isReqmod ? null : Buffer.from('HTTP/1.1 200 OK\r\n\r\n'));
        const head =
          original === null
            ? null
            : rewriteHttpHead(original, {
                contentLength: replacement.body.size,
                ...(replacement.contentType !== undefined && { contentType: replacement.contentType }),
                ...(replacement.fileName !== undefined && { fileName: replacement.fileName }),
              });
        await this.#write(
          encodeResponseHead({
            status: 200,
            headers,
            reqHdr: isReqmod ? head : null,
            resHdr: isReqmod ? null : head,
            body: isReqmod ? 'req-body' : 'res-body',
          }),
        );
        for await (const chunk of replacement.body.createReadStream() as AsyncIterable<Buffer>) {
          if (sink.closed) break;
          await this.#write(chunkHeader(chunk.length), chunk, CRLF);
        }
        await this.#write(LAST_CHUNK);
        return;
      }
      case 'partial-content': {
        // The original head and use-original-body=0: the client keeps its own body (partial-content.ts).
        const isReqmod = this.head.method === 'REQMOD';
        const httpHead = (isReqmod ? this.#reqHdr : this.#resHdr)!.raw; // may206 required it
        await this.#write(encodePartialContent({ headers, method: isReqmod ? 'REQMOD' : 'RESPMOD', httpHead }));
        return;
      }
      case 'echo': {
        const isReqmod = this.head.method === 'REQMOD';
        const hasBody = this.#spool !== null;
        await this.#write(
          encodeResponseHead({
            status: 200,
            headers,
            reqHdr: isReqmod ? this.#reqHdr?.raw : null,
            resHdr: isReqmod ? null : this.#resHdr?.raw,
            body: hasBody ? (isReqmod ? 'req-body' : 'res-body') : null,
          }),
        );
        if (!hasBody || body === null) return;
        for await (const chunk of body.createReadStream() as AsyncIterable<Buffer>) {
          if (sink.closed) break;
          await this.#write(chunkHeader(chunk.length), chunk, CRLF);
        }
        await this.#pauseBeforeLastChunk(body.size);
        // Errata e2: a server that does not modify the message echoes the trailers it received.
        await this.#write(encodeLastChunk(null, this.#trailers));
        return;
      }
    }
  }

  /** LAST_CHUNK_PAUSE_MS for a RESPMOD body of SQUID_PIPE_BYTES or more without a Content-Length (Squid's bug 5550). */
  async #pauseBeforeLastChunk(bodyBytes: number): Promise<void> {
    if (this.head.method !== 'RESPMOD' || bodyBytes < SQUID_PIPE_BYTES || this.#responseLength() !== null) return;
    await sleep(LAST_CHUNK_PAUSE_MS);
  }

  /** The HTTP response's Content-Length (null: none or not a number), parsed once per transaction. */
  #responseLength(): number | null {
    if (this.#declaredLength === undefined) this.#declaredLength = declaredLength(this.#resHdr);
    return this.#declaredLength;
  }

  /** A 204: the same bytes for every 204 of this service and decision within a second. Null once written. */
  #writeNoContent(icapHeaders: readonly (readonly [string, string])[]): Promise<void> | null {
    const istag = this.#init.service.istag;
    const answer = NO_CONTENT_ANSWERS.get(istag, noContentKey(icapHeaders), () =>
      encodeSimpleResponse(204, [...commonHeaders(istag), ...icapHeaders]),
    );
    this.#bytesOut += answer.length;
    return this.#init.sink.writeNow(answer);
  }

  async #write(...buffers: Buffer[]): Promise<void> {
    for (const b of buffers) this.#bytesOut += b.length;
    await this.#init.sink.write(...buffers);
  }

  #httpStatus(plan: ResponsePlan | null): number | null {
    if (plan === null) return null;
    if (plan.kind === 'block') return 403;
    return httpStatusCode(this.#resHdr?.startLine);
  }

  #record(plan: ResponsePlan | null, decision: Decision | null, outcome: string): AccessRecord {
    const headers = this.head.headers;
    if (outcome === 'answered-after-commit' || outcome === 'blocked-by-truncation') {
      return this.#committedRecord(decision!, outcome);
    }
    const answered = outcome === 'answered' && plan !== null && decision !== null;
    const url = this.#url();
    const clientIp = headers.get('X-Client-IP');
    const username = headers.get('X-Client-Username') ?? headers.get('X-Authenticated-User');
    const user = username === undefined ? undefined : this.#attributes().user;
    // Optional fields by assignment, not conditional spreads (V8 copies those through a slow path).
    const record: AccessRecord = {
      transaction_id: this.id,
      client: this.#init.clientAddress,
      method: this.head.method,
      service: this.#init.service.name,
      // Unanswered: the error status the connection sent instead (408, 400, 413, 500), else 0 (nothing sent).
      icap_status: answered ? (plan.kind === 'no-content' ? 204 : plan.kind === 'partial-content' ? 206 : 200) : (this.#errorAnswer?.status ?? 0),
      http_status: answered ? this.#httpStatus(plan) : null,
      bytes_in: this.#bytesIn,
      bytes_out: this.#errorAnswer === null ? this.#bytesOut : this.#bytesOut + this.#errorAnswer.bytes,
      preview: this.head.preview,
      body_bytes: this.#spool?.size ?? 0,
      verdict: answered ? verdictLabel(decision) : outcome === 'internal-error' || outcome === 'spool-error' ? 'error' : 'aborted',
      threats: decision?.action === 'block' && decision.reason === 'infected' ? decision.threats.map((t) => t.name) : [],
      scan_errors:
        decision !== null && 'errors' in decision ? decision.errors.map((e) => `${e.backend}:${e.kind}`) : [],
      reason: answered ? decision.reason : outcome,
      duration_ms: Math.round((performance.now() - this.#started) * 10) / 10,
      scans: this.#scanResults,
    };
    if (url !== undefined) record.url = url;
    const partial = this.#partialRange();
    if (partial !== undefined) record.partial = partial;
    if (clientIp !== undefined) record.x_client_ip = clientIp;
    if (username !== undefined) record.x_client_username = username;
    if (this.#contentScan !== null) Object.assign(record, contentScanFields(this.#contentScan));
    else if (this.#prepared !== null) Object.assign(record, preparedContentFields(this.#prepared));
    if (user !== undefined) record.user = user;
    if (answered) Object.assign(record, this.#policyFields(decision));
    return record;
  }

  #committedRecord(decision: Decision, outcome: string): AccessRecord {
    const base = { ...this.#record(null, null, 'committed'), ...this.#policyFields(decision) };
    return {
      ...base,
      icap_status: 200,
      http_status: httpStatusCode(this.#resHdr?.startLine),
      verdict: verdictLabel(decision),
      threats: decision.action === 'block' && decision.reason === 'infected' ? decision.threats.map((t) => t.name) : [],
      scan_errors: 'errors' in decision ? decision.errors.map((e) => `${e.backend}:${e.kind}`) : [],
      // "blocked-by-truncation": committed before the verdict, then cut (#finishCommitted).
      reason: outcome === 'blocked-by-truncation' ? 'blocked-by-truncation' : decision.reason,
      committed: { kicks: this.#kicks, released_bytes: this.#released },
    };
  }

  #finish(record: AccessRecord): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#init.onFinished(record);
  }
}
