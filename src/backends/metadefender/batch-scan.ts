/**
 * The parts of one upload as one batch on one Core server (specs/metadefender-core-api.md §7).
 * §9: a batch_id exists only on the server that issued it, so every call below goes to the
 * server leased for the batch; the caller holds that one lease for the whole run.
 *
 *   POST /file/batch (rule, user_agent, user-data) ─► batch_id
 *        └─ refused, 503, unreachable: nothing was accepted ─► `retry` (the caller tries another server)
 *   POST /file + `batch: <id>`, one per part (Content-Length, the part's file name) ─► data_id each
 *   POST /file/batch/{id}/close ─── refused while files are unfinished (older servers) ─► close again later
 *   GET /file/batch/{id}?first=&size= (paged), back-off poll_initial_ms → poll_max_ms, until every file is finished
 *        (a Retry-After on a 429/503 answer: the next wait at least that, up to the deadline; poll-waits.ts)
 *   [POST /file/batch/{id}/close again, when it was refused]
 *   each file entry ─► result-map.ts ─► one BackendResult per part (infected: GET /file/{data_id} for engine names)
 *   GET /file/batch/{id}/certificate ─► batch-certificate.ts: signed, verified (for the log; verdicts stand)
 *
 * The server no longer knows the batch (404, or the "Not Found" object; §7, §3) while files are
 * added or unfinished: Core restarted, or a balancer sent the call to another node (§9). No verdict
 * was had and we still hold every part (§9: "keep the body until a final verdict"; "resubmit the
 * whole content"), so the whole batch is opened and uploaded once more on the same server — which
 * just answered, so it is alive — as a single job is. Unknown again: every part an error.
 *
 * Any other failure before every verdict is known makes every part an error (never clean) and
 * cancels the batch on its server, once, best effort (open-jobs.ts). Never throws.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendResult, PartsBatch, ScanErrorKind, ScanMeta, ScanPart } from '../backend.js';
import type { LeaseOutcome } from '../pool/endpoint-pool.js';
import { checkBatchCertificate, type CertificateCheck } from './batch-certificate.js';
import { batchFileHeaders, batchOpenHeaders, isUsableBatchId } from './batch-headers.js';
import { BATCH_PAGE_SIZE, batchCallFailure, fileResultDocument, isTransientStatus, isUnknownBatch, readBatchPage } from './batch-status.js';
import { classify, MD_ERROR_CODES, type CoreEndpoint, type JsonReply } from './core-endpoint.js';
import type { OpenJob, OpenJobs } from './open-jobs.js';
import { PollWaits } from './poll-waits.js';
import { errorText, isFinished, isNotFoundDocument, mapResult, submitFailure, type CoreVerdict } from './result-map.js';

export interface BatchSettings {
  /** The backend name results carry. */
  readonly backend: string;
  /** Workflow rule; '' = the server's default. */
  readonly rule: string;
  readonly timeoutMs: number;
  readonly pollInitialMs: number;
  readonly pollMaxMs: number;
}

export interface BatchCall {
  /** The leased server and its pool id (results name it). */
  readonly core: CoreEndpoint;
  readonly endpoint: string;
  /** Non-empty parts, each to be uploaded. */
  readonly parts: readonly ScanPart[];
  readonly meta: ScanMeta;
  /** Bounds the whole batch: timeout_ms, the caller's abort, the backend closing. */
  readonly signal: AbortSignal;
  readonly elapsed: () => number;
  /** A thrown error as an error kind and text; knows whether the deadline or an abort caused it. */
  readonly describe: (err: unknown) => { readonly kind: ScanErrorKind; readonly message: string };
  /** Where an opened batch is tracked, so it is cancelled once when given up (also by close()). */
  readonly jobs: OpenJobs;
}

export interface BatchOutcome {
  /** One per part of the call, same order. */
  readonly results: BackendResult[];
  readonly batch?: PartsBatch;
  /** How the server behaved, for passive health. */
  readonly health: LeaseOutcome;
  /** Nothing was accepted: the whole batch may be tried on another server. */
  readonly retry: boolean;
}

/** Transport failures or transient statuses in a row while polling before the batch counts as lost. */
const MAX_POLL_FAILURES = 3;
/** Final close attempts after every file finished (older servers may lag a little). */
const MAX_CLOSE_ATTEMPTS = 3;

/** A step of the batch failed: every part becomes an error; `part` gets the precise message. */
class BatchFailure extends Error {
  readonly kind: ScanErrorKind;
  readonly health: LeaseOutcome;
  readonly part: number | undefined;
  /** The server no longer knows the batch: nothing to cancel, and the parts may go up once more. */
  readonly lost: boolean;
  constructor(kind: ScanErrorKind, message: string, health: LeaseOutcome, part?: number, lost = false) {
    super(message);
    this.kind = kind;
    this.health = health;
    this.part = part;
    this.lost = lost;
  }
}

/** How one opened batch ended; `lost` when its server no longer knew it. */
interface BatchRun {
  readonly outcome: BatchOutcome;
  readonly lost: boolean;
}

export async function runBatch(call: BatchCall, settings: BatchSettings): Promise<BatchOutcome> {
  const first = await openAndRun(call, settings, false);
  if (!first.lost) return first.outcome;
  // §9: the batch was lost with no verdict; the whole of it goes up once more, same server.
  return (await openAndRun(call, settings, true)).outcome;
}

/** §7 open, then the rest of the batch on the same server. */
async function openAndRun(call: BatchCall, settings: BatchSettings, resubmitted: boolean): Promise<BatchRun> {
  const at = call.core.label;
  const everyPart = (kind: ScanErrorKind, message: string, health: LeaseOutcome, retry: boolean): BatchRun => ({
    outcome: { results: call.parts.map(() => errorResult(call, settings, kind, message)), health, retry },
    lost: false,
  });
  let opened: JsonReply;
  try {
    opened = await call.core.json('POST', '/file/batch', call.signal, batchOpenHeaders(call.meta, settings));
  } catch (err) {
    const e = classify(err, call.signal);
    const { kind, message } = call.describe(e);
    // Refused or dropped before an answer: out of the pool for the cool-down, the batch goes elsewhere.
    if (e.code === MD_ERROR_CODES.unreachable) return everyPart(kind, `${at}: opening a batch failed: ${message}`, 'down', true);
    return everyPart(kind, `${at}: opening a batch failed: ${message}`, call.signal.aborted ? 'neutral' : 'failure', false);
  }
  if (opened.status !== 200) {
    const f = batchCallFailure('open', opened.status, opened.json);
    return everyPart(f.kind, `${at}: ${f.message}`, f.serverFault ? 'failure' : 'ok', f.retryElsewhere);
  }
  const batchId = (opened.json as { batch_id?: unknown } | undefined)?.batch_id;
  if (!isUsableBatchId(batchId)) {
    const why = opened.json === undefined ? `malformed JSON: ${opened.malformed}` : 'no usable batch_id';
    return everyPart('backend-error', `${at}: the answer opening a batch has ${why}`, 'failure', false);
  }
  return new OpenBatch(call, settings, batchId, resubmitted).run();
}

function errorResult(call: BatchCall, settings: BatchSettings, kind: ScanErrorKind, message: string): BackendResult {
  return { outcome: 'error', backend: settings.backend, durationMs: call.elapsed(), kind, message, endpoint: call.endpoint };
}

/** A batch open on `call.core`: the rest of the flow. */
class OpenBatch {
  readonly #call: BatchCall;
  readonly #settings: BatchSettings;
  readonly #id: string;
  /** The id as a path segment. */
  readonly #path: string;
  /** `<server> batch <id>`, for messages. */
  readonly #at: string;
  /** This batch is the whole batch uploaded once more after the first was lost. */
  readonly #resubmitted: boolean;
  /** Cancelled once when given up; settled when every file finished or the server lost it. */
  readonly #job: OpenJob;

  constructor(call: BatchCall, settings: BatchSettings, batchId: string, resubmitted: boolean) {
    this.#call = call;
    this.#settings = settings;
    this.#id = batchId;
    this.#path = `/file/batch/${encodeURIComponent(batchId)}`;
    this.#at = `${call.core.label} batch ${batchId}`;
    this.#resubmitted = resubmitted;
    this.#job = call.jobs.track((signal) => cancelBatch(call.core, batchId, signal));
  }

  async run(): Promise<BatchRun> {
    const call = this.#call;
    let verdicts: BackendResult[];
    let closeProblem: string | undefined;
    try {
      const ids = await this.#addFiles();
      const closedEarly = await this.#closeFirst();
      const entries = await this.#waitFinished(ids);
      // Every file finished: nothing left running to cancel.
      this.#job.settle();
      verdicts = await this.#results(ids, entries);
      // Every verdict is known: a batch that will not close costs only its signed report.
      if (!closedEarly) closeProblem = await this.#closeFinal();
    } catch (err) {
      const f = err instanceof BatchFailure ? err : this.#failureFrom(err);
      // A batch its server no longer knows has nothing left there to cancel.
      if (f.lost) this.#job.settle();
      else this.#job.cancel();
      const abandoned = `${this.#at}: abandoned: ${f.message}`;
      return {
        outcome: {
          results: call.parts.map((part, i) =>
            errorResult(call, this.#settings, f.kind, i === f.part ? `${this.#at} part ${part.label}: ${f.message}` : abandoned),
          ),
          batch: { id: this.#id, endpoint: call.endpoint, signed: false, verified: null, detail: `batch failed: ${f.message}` },
          health: f.health,
          retry: false,
        },
        lost: f.lost && !this.#resubmitted,
      };
    }
    const check: CertificateCheck = closeProblem !== undefined ? { signed: false, verified: null, detail: closeProblem } : await this.#certificate();
    return {
      outcome: {
        results: verdicts,
        batch: { id: this.#id, endpoint: call.endpoint, signed: check.signed, verified: check.verified, ...(check.detail !== undefined && { detail: check.detail }) },
        health: 'ok',
        retry: false,
      },
      lost: false,
    };
  }

  /** The server no longer knows the batch (§7 404, §3 "Not Found"): expired, restarted, or another node answered (§9). */
  #unknown(what: string, status: number, part?: number): BatchFailure {
    const why = this.#resubmitted ? 'again, after every part was uploaded once more' : 'expired, restarted, or another node got the call';
    return new BatchFailure('backend-error', `${what}: the server no longer knows the batch (HTTP ${status}); ${why}`, 'failure', part, true);
  }

  /** §7 "add file": `POST /file` with `batch: <id>` per part, in order; each gets its own data_id. */
  async #addFiles(): Promise<string[]> {
    const { core, parts, meta, signal } = this.#call;
    const ids: string[] = [];
    for (const [i, part] of parts.entries()) {
      const what = `uploading part ${part.label}`;
      let reply: JsonReply;
      try {
        reply = await core.upload(part.body, batchFileHeaders(meta, part, i, this.#id, this.#settings), signal);
      } catch (err) {
        throw this.#lost(err, what, i);
      }
      if (reply.status !== 200) {
        if (isUnknownBatch(reply.status, reply.json)) throw this.#unknown(what, reply.status, i);
        const f = submitFailure(reply.status, errorText(reply.json));
        // Busy or broken counts against the server; a refusal of ours (key, rule, size) does not.
        throw new BatchFailure(f.kind, `${what}: ${f.message}`, f.retryElsewhere || reply.status >= 500 ? 'failure' : 'ok', i);
      }
      const dataId = (reply.json as { data_id?: unknown } | undefined)?.data_id;
      if (typeof dataId !== 'string' || dataId === '') {
        const why = reply.json === undefined ? `malformed JSON: ${reply.malformed}` : 'no data_id';
        throw new BatchFailure('backend-error', `${what}: the answer has ${why}`, 'failure', i);
      }
      ids.push(dataId);
    }
    return ids;
  }

  /**
   * §7 close, right after the uploads. True when closed. Older servers refuse while files are
   * unfinished: then (and on any other refusal) false, and #closeFinal tries again once every
   * file is finished. Only a lost server or a forgotten batch ends the batch here.
   */
  async #closeFirst(): Promise<boolean> {
    let reply: JsonReply;
    try {
      reply = await this.#call.core.json('POST', `${this.#path}/close`, this.#call.signal);
    } catch (err) {
      throw this.#lost(err, 'closing the batch');
    }
    if (reply.status === 200) return true;
    if (isUnknownBatch(reply.status, reply.json)) throw this.#unknown('closing the batch', reply.status);
    return false;
  }

  /** §7 close after every file finished, a few tries. Undefined when closed, else why not (for the log). */
  async #closeFinal(): Promise<string | undefined> {
    const { core, signal } = this.#call;
    let why = '';
    for (let attempt = 0; attempt < MAX_CLOSE_ATTEMPTS; attempt++) {
      try {
        if (attempt > 0) await sleep(this.#settings.pollInitialMs, undefined, { signal });
        const reply = await core.json('POST', `${this.#path}/close`, signal);
        if (reply.status === 200) return undefined;
        why = batchCallFailure('close', reply.status, reply.json).message;
        if (isUnknownBatch(reply.status, reply.json)) break;
      } catch (err) {
        why = this.#call.describe(err).message;
        if (signal.aborted) break;
      }
    }
    return `batch not closed, so no signed report: ${why}`;
  }

  /** §7 status, paged, with back-off until every file of ours is finished (§3 completion rule). */
  async #waitFinished(ids: readonly string[]): Promise<Map<string, Record<string, unknown>>> {
    const { signal, elapsed } = this.#call;
    const { timeoutMs } = this.#settings;
    const waits = new PollWaits(this.#settings.pollInitialMs, this.#settings.pollMaxMs);
    let failures = 0;
    let missingRounds = 0;
    // Each round sleeps at least poll_initial_ms and the signal ends the batch at timeout_ms; this
    // bound only makes the loop visibly finite.
    const maxPolls = Math.ceil(this.#settings.timeoutMs / Math.max(1, this.#settings.pollInitialMs)) + 16;
    for (let round = 0; round < maxPolls; round++) {
      await waits.next(signal);
      const listing = await this.#listing(ids);
      if ('transient' in listing) {
        if (++failures < MAX_POLL_FAILURES) {
          waits.answered(listing.status, listing.retryAfterMs, timeoutMs - elapsed());
          continue;
        }
        throw new BatchFailure(listing.kind, `asking for the batch status failed ${failures} times: ${listing.transient}`, listing.health);
      }
      failures = 0;
      const missing = ids.filter((id) => !listing.files.has(id));
      if (missing.length > 0 && listing.complete && ++missingRounds >= MAX_POLL_FAILURES) {
        throw new BatchFailure('backend-error', `the batch status does not list data_id ${missing[0]} (${missing.length} missing)`, 'failure', ids.indexOf(missing[0]!));
      }
      if (missing.length === 0 && ids.every((id) => isFinished(fileResultDocument(id, listing.files.get(id)!)))) return listing.files;
    }
    throw new BatchFailure('timeout', `files still not finished after ${maxPolls} status polls`, 'neutral');
  }

  /**
   * Every page of the status, until our files are all listed or the listing ends. A lost
   * connection or a busy answer is `transient` (the caller counts them); anything else that is
   * not a status page ends the batch.
   */
  async #listing(
    ids: readonly string[],
  ): Promise<
    | { readonly files: Map<string, Record<string, unknown>>; readonly complete: boolean }
    | {
        readonly transient: string;
        readonly kind: ScanErrorKind;
        readonly health: LeaseOutcome;
        /** The answer's status and Retry-After; none when the connection failed. */
        readonly status?: number;
        readonly retryAfterMs?: number | undefined;
      }
  > {
    const { core, signal } = this.#call;
    const files = new Map<string, Record<string, unknown>>();
    let first = 0;
    // A page lists at least one file or ends the listing, and our files are all a batch holds.
    for (let page = 0; page <= ids.length + 1; page++) {
      let reply: JsonReply;
      try {
        reply = await core.json('GET', `${this.#path}?first=${first}&size=${BATCH_PAGE_SIZE}`, signal);
      } catch (err) {
        const e = classify(err, signal);
        if (e.code !== MD_ERROR_CODES.unreachable) throw this.#lost(e, 'asking for the batch status');
        // §9: a server that dies after accepting work loses it; a few misses first, it may be a blip.
        return { transient: e.message, kind: 'unreachable', health: 'down' };
      }
      if (isUnknownBatch(reply.status, reply.json)) throw this.#unknown('asking for the batch status', reply.status);
      if (isTransientStatus(reply.status)) {
        const f = batchCallFailure('status', reply.status, reply.json);
        return { transient: f.message, kind: f.kind, health: 'failure', status: reply.status, retryAfterMs: reply.retryAfterMs };
      }
      if (reply.status !== 200) throw new BatchFailure('backend-error', batchCallFailure('status', reply.status, reply.json).message, 'ok');
      if (reply.json === undefined) throw new BatchFailure('backend-error', `malformed JSON in the batch status: ${reply.malformed}`, 'failure');
      const parsed = readBatchPage(reply.json);
      if (!parsed) throw new BatchFailure('backend-error', `the batch status answer is not a status: ${JSON.stringify(reply.json).slice(0, 120)}`, 'failure');
      for (const f of parsed.files) files.set(f.dataId, f.entry);
      const listed = parsed.files.length + parsed.unnamed;
      first += listed;
      const allSeen = ids.every((id) => files.has(id));
      const ended = listed === 0 || (parsed.count !== undefined ? first >= parsed.count : listed < BATCH_PAGE_SIZE);
      if (allSeen || ended) return { files, complete: true };
    }
    return { files, complete: false };
  }

  /** Each finished entry → a result (§4 via result-map.ts). */
  async #results(ids: readonly string[], entries: ReadonlyMap<string, Record<string, unknown>>): Promise<BackendResult[]> {
    const results: BackendResult[] = [];
    for (const [i, id] of ids.entries()) {
      const part = this.#call.parts[i]!;
      let verdict = mapResult(fileResultDocument(id, entries.get(id)!));
      if (verdict.verdict === 'infected' && !verdict.byPolicy) verdict = await this.#withEngineNames(id, verdict);
      results.push(this.#toResult(part, id, verdict));
    }
    return results;
  }

  /**
   * A batch entry has no `scan_details` (§7), so its threat is the label ("Infected"). The file's
   * own result on the same server (§3, §9) names what the engines found; without it, the label stays.
   */
  async #withEngineNames(dataId: string, verdict: CoreVerdict & { verdict: 'infected' }): Promise<CoreVerdict> {
    try {
      const reply = await this.#call.core.json('GET', `/file/${encodeURIComponent(dataId)}`, this.#call.signal);
      if (reply.status !== 200 || reply.json === undefined || isNotFoundDocument(reply.json) || !isFinished(reply.json)) return verdict;
      const full = mapResult(reply.json);
      return full.verdict === 'infected' && full.threats.length > 0 ? full : verdict;
    } catch {
      return verdict;
    }
  }

  #toResult(part: ScanPart, dataId: string, verdict: CoreVerdict): BackendResult {
    const base = { backend: this.#settings.backend, durationMs: this.#call.elapsed(), endpoint: this.#call.endpoint };
    switch (verdict.verdict) {
      case 'clean':
        return { outcome: 'clean', ...base };
      case 'infected':
        return { outcome: 'infected', ...base, threats: verdict.threats };
      case 'error':
        return { outcome: 'error', ...base, kind: verdict.kind, message: `${this.#at} part ${part.label} (data_id ${dataId}): ${verdict.message}` };
    }
  }

  /** §7 signed report; any trouble is recorded, never a verdict. */
  async #certificate(): Promise<CertificateCheck> {
    try {
      const reply = await this.#call.core.text(`${this.#path}/certificate`, this.#call.signal);
      if (reply.status !== 200) return { signed: false, verified: null, detail: `signed report not fetched: HTTP ${reply.status}${errSuffix(reply.text)}` };
      return checkBatchCertificate(reply.text, this.#id);
    } catch (err) {
      return { signed: false, verified: null, detail: `signed report not fetched: ${this.#call.describe(err).message}` };
    }
  }

  /** A request that threw: aborted / timed out (says nothing about the server), lost, or broken. */
  #lost(err: unknown, what: string, part?: number): BatchFailure {
    const e = classify(err, this.#call.signal);
    const { kind, message } = this.#call.describe(e);
    const health: LeaseOutcome = this.#call.signal.aborted ? 'neutral' : e.code === MD_ERROR_CODES.unreachable ? 'down' : 'failure';
    return new BatchFailure(kind, `${what} failed: ${message}`, health, part);
  }

  #failureFrom(err: unknown): BatchFailure {
    const { kind, message } = this.#call.describe(err);
    return new BatchFailure(kind, message, this.#call.signal.aborted ? 'neutral' : 'failure');
  }
}

/**
 * §7 cancel of batch `batchId` on `core`. The path is unconfirmed: `/file/batch/{id}/cancel`
 * first, then the published `/file/{id}/cancel` when the first is not there. Rejects on failure;
 * callers send it through OpenJobs (best effort, once, bounded by `signal`).
 */
export async function cancelBatch(core: CoreEndpoint, batchId: string, signal: AbortSignal): Promise<JsonReply> {
  const id = encodeURIComponent(batchId);
  const reply = await core.json('POST', `/file/batch/${id}/cancel`, signal);
  return reply.status === 404 || reply.status === 405 ? core.json('POST', `/file/${id}/cancel`, signal) : reply;
}

function errSuffix(text: string): string {
  try {
    const err = errorText(JSON.parse(text));
    return err ? `: ${err}` : '';
  } catch {
    return '';
  }
}
