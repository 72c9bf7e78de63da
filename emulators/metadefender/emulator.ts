/**
 * A MetaDefender Core v4/v5 node on loopback, for tests and local runs (README.md). It follows
 * specs/metadefender-core-api.md, failures included: chunked uploads get 411, polling an id this
 * node never issued gets the "Not Found" document (§3, §9), a full queue gets 503.
 *
 *   request ─► log ─► latency ─► drop? ─► upload reset? ─► 503? ─► 500/502/429? ─► auth ─► route
 *           ─► (malformed JSON?) ─► answer
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { batchCertificate, batchStatus, newSigner, type Batch } from './batches.js';
import { resolveOptions, type EmulatorOptions, type ResolvedOptions, type Route } from './config.js';
import { FaultPlan } from './faults.js';
import { digests, isFinished, newId, postProcessingMs, resultDocument, sanitizedName, sniffType, type Job } from './jobs.js';
import { classify, decodeHeader, header, notFoundEndpoint, readBody, type Answer } from './http.js';
import { infoDocument } from './info.js';
import { scanFile } from './scanner.js';

export interface RequestLogEntry {
  readonly seq: number;
  readonly method: string;
  /** Path without the query. */
  readonly path: string;
  readonly route: Route | 'unknown';
  /** data_id, batch_id or hash named in the path, when there is one. */
  readonly id: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** When the request arrived (performance.now(), ms): tests measure the client's waits with it. */
  readonly at: number;
  /**
   * Final status; 'dropped' when the connection was closed without an answer, 'reset' when an
   * upload was cut by a TCP reset halfway through (faults.uploadResetRate).
   */
  status: number | 'dropped' | 'reset' | 'pending';
}

export interface EmulatorStats {
  /** Every request, oldest first (at most options.requestLogLimit). */
  readonly requests: RequestLogEntry[];
  /** data_ids this node issued, in order. */
  readonly acceptedIds: string[];
  /** Uploads refused for lack of a Content-Length (chunked or none). */
  chunkedRejected: number;
}

export interface EmulatorHandle {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly stats: EmulatorStats;
  /** The options in force (after defaults). */
  readonly options: ResolvedOptions;
  /** Replaces top-level option keys while running (faults, ready, rules...); host/port stay. */
  configure(patch: Partial<EmulatorOptions>): void;
  /** Forgets every job and batch, as a restarted node would. */
  forgetAll(): void;
  close(): Promise<void>;
}

/** Headers copied into the request log (`host` shows which name a client asked for, DNS mode). */
const LOGGED_HEADERS = [
  'host',
  'apikey',
  'content-length',
  'transfer-encoding',
  'content-type',
  'filename',
  'rule',
  'workflow',
  'user_agent',
  'metadata',
  'batch',
  'callbackurl',
] as const;

/**
 * Injected error answers (faults.status500Rate, status502Rate, status429Rate). 500 and 429 come
 * from Core with its `{"err"}` body (§1); 502 comes from a balancer in front of it (§9), as HTML.
 */
const INJECTED_ERRORS: Record<500 | 502 | 429, Answer> = {
  500: { status: 500, json: { err: 'Internal server error.' } },
  502: { status: 502, raw: { body: '<html><body><h1>502 Bad Gateway</h1></body></html>\n', type: 'text/html' } },
  429: { status: 429, json: { err: 'Too many requests.' } },
};

export async function startEmulator(options: EmulatorOptions = {}): Promise<EmulatorHandle> {
  const emulator = new MetaDefenderEmulator(resolveOptions(options));
  await emulator.listen();
  return emulator.handle();
}

class MetaDefenderEmulator {
  #options: ResolvedOptions;
  #faults: FaultPlan;
  readonly #server: Server;
  readonly #jobs = new Map<string, Job>();
  readonly #batches = new Map<string, Batch>();
  readonly #signer = newSigner();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #stats: EmulatorStats = { requests: [], acceptedIds: [], chunkedRejected: 0 };
  #seq = 0;
  #closed = false;
  #url = '';
  #lastSweep = 0;

  constructor(options: ResolvedOptions) {
    this.#options = options;
    this.#faults = new FaultPlan(options.faults);
    this.#server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.#send(req, res, { status: 500, json: { err: String(err) } }, 'info', null);
        else res.destroy();
      });
    });
  }

  async listen(): Promise<void> {
    this.#server.listen(this.#options.port, this.#options.host);
    await once(this.#server, 'listening');
    const { port } = this.#server.address() as AddressInfo;
    this.#url = `http://${this.#options.host.includes(':') ? `[${this.#options.host}]` : this.#options.host}:${port}`;
  }

  handle(): EmulatorHandle {
    const self = this;
    const { port } = this.#server.address() as AddressInfo;
    return {
      port,
      url: this.#url,
      stats: this.#stats,
      get options() {
        return self.#options;
      },
      configure(patch) {
        const { host, port: p, ...rest } = patch;
        void host;
        void p;
        self.#options = resolveOptions({ ...self.#options, ...rest });
        if (patch.faults !== undefined) self.#faults = new FaultPlan(self.#options.faults);
      },
      forgetAll() {
        self.#jobs.clear();
        self.#batches.clear();
      },
      close: () => this.close(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const method = req.method ?? 'GET';
    const { route, id } = classify(method, url.pathname);
    const entry = this.#log(req, url.pathname, route, id);
    const faultRoute: Route = route === 'unknown' ? 'info' : route;

    const latency = this.#faults.latencyMs(faultRoute);
    if (latency > 0) await this.#sleep(latency);
    if (this.#closed) return void req.socket.destroy();
    if (this.#faults.drop(faultRoute)) {
      entry.status = 'dropped';
      req.socket.destroy();
      return;
    }
    if (route === 'submit' && this.#faults.resetUpload()) {
      entry.status = 'reset';
      return this.#resetMidUpload(req);
    }
    // Retry-After only when configured: the spec names none (§2).
    const retryAfter = this.#options.faults.retryAfterSeconds;
    const busyHeaders = retryAfter !== undefined ? { headers: { 'Retry-After': String(retryAfter) } } : {};
    if (this.#faults.busy(faultRoute)) {
      return this.#send(req, res, { status: 503, json: { err: 'Server is too busy. Try again later.' }, close: true, ...busyHeaders }, faultRoute, entry);
    }
    const injected = this.#faults.errorStatus(faultRoute);
    if (injected !== undefined) {
      return this.#send(req, res, { ...INJECTED_ERRORS[injected], close: true, ...(injected === 429 && busyHeaders) }, faultRoute, entry);
    }
    // /readyz is what orchestrators probe without credentials.
    if (route !== 'health') {
      const denied = this.#authenticate(req);
      if (denied) return this.#send(req, res, { ...denied, close: true }, faultRoute, entry);
    }
    this.#sweep();
    const answer = await this.#route(req, url, method, route, id);
    this.#send(req, res, answer, faultRoute, entry);
  }

  async #route(req: IncomingMessage, url: URL, method: string, route: Route | 'unknown', id: string | undefined): Promise<Answer> {
    const o = this.#options;
    switch (route) {
      case 'health':
        if (o.apiVersion === 4) return notFoundEndpoint();
        return o.ready && this.#queued() < o.maxQueue ? { status: 200, json: { status: 'ready' } } : { status: 503, json: { err: 'Not ready' } };
      case 'info':
        return infoDocument(url.pathname, header(req, 'user_agent') ?? '', o, this.#queued());
      case 'submit':
        return this.#submit(req);
      case 'poll':
        return this.#poll(id!);
      case 'converted':
        return this.#converted(req, id!);
      case 'hash':
        return this.#hash(req, id!);
      case 'cancel':
        return this.#cancel(id!);
      case 'batch':
        return this.#batch(req, url, method, id);
      case 'unknown':
        return notFoundEndpoint();
    }
  }

  /** `POST /file` (§2). */
  async #submit(req: IncomingMessage): Promise<Answer> {
    const o = this.#options;
    const lengthHeader = req.headers['content-length'];
    if (lengthHeader === undefined || req.headers['transfer-encoding'] !== undefined) {
      this.#stats.chunkedRejected++;
      return { status: 411, json: { err: 'Missing Content-Length header.' }, close: true };
    }
    const length = Number(lengthHeader);
    if (header(req, 'downloadfrom') !== undefined || header(req, 'filepath') !== undefined) {
      return { status: 400, json: { err: 'downloadfrom and filepath are not supported by this emulator.' }, close: true };
    }
    const callback = header(req, 'callbackurl');
    if (callback !== undefined && !/^https?:\/\/[^/]+/i.test(callback)) return { status: 400, json: { err: 'Callback url is invalid.' }, close: true };
    let metadata: unknown;
    const metaHeader = header(req, 'metadata');
    if (metaHeader !== undefined) {
      try {
        metadata = JSON.parse(metaHeader);
      } catch {
        metadata = null;
      }
      if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
        return { status: 400, json: { err: 'Invalid metadata header: must be a JSON object.' }, close: true };
      }
    }
    const rule = this.#ruleFor(req);
    if (typeof rule !== 'string') return { ...rule, close: true };
    const batchId = header(req, 'batch');
    let batch: Batch | undefined;
    if (batchId !== undefined) {
      batch = this.#batches.get(batchId);
      if (!batch) return { status: 404, json: { err: 'Batch not found.' }, close: true };
      if (batch.closed) return { status: 400, json: { err: 'Batch is closed.' }, close: true };
    }
    if (length === 0) return { status: 422, json: { err: 'File is empty.' } };
    if (length > o.maxBodyBytes) return { status: 500, json: { err: 'File is larger than the emulator holds in memory.' }, close: true };
    if (this.#queued() >= o.maxQueue) return { status: 503, json: { err: 'Server is too busy. Try again later.' }, close: true };

    const body = await readBody(req);
    const fileName = decodeHeader(header(req, 'filename')) ?? 'unnamed';
    const sums = digests(body);
    const dataId = newId();
    const multipart = (req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data');
    if (multipart && o.apiVersion === 4) return { status: 400, json: { err: 'Multipart upload is not supported.' } };
    if (multipart && !batch) {
      // v5.22+: a multipart POST becomes an implicit batch (§1); the emulator does not parse the parts.
      batch = this.#openBatch(req, rule, '');
    }
    const job: Job = {
      dataId,
      fileName,
      size: body.length,
      ...sums,
      fileType: sniffType(body),
      submittedAt: Date.now(),
      apikey: header(req, 'apikey') ?? null,
      userAgent: header(req, 'user_agent') ?? '',
      rule,
      metadata,
      batchId: batch?.batchId ?? null,
      outcome: scanFile(body, fileName, sums.sha256, o),
      canceled: false,
    };
    this.#jobs.set(dataId, job);
    this.#stats.acceptedIds.push(dataId);
    batch?.files.push(dataId);
    return { status: 200, json: multipart ? { batch_id: batch!.batchId } : { data_id: dataId } };
  }

  /** `GET /file/{data_id}` (§3). */
  #poll(dataId: string): Answer {
    const job = this.#jobs.get(dataId);
    if (!job || this.#faults.forget()) return { status: this.#options.notFoundStatus, json: { [dataId]: 'Not Found' } };
    return { status: 200, json: resultDocument(job, Date.now(), this.#options, this.#url) };
  }

  /** `GET /file/converted/{data_id}` (§5). */
  #converted(req: IncomingMessage, dataId: string): Answer {
    const job = this.#jobs.get(dataId);
    const missing: Answer = { status: 404, json: { err: 'File could not be found' } };
    if (!job || this.#faults.forget()) return missing;
    if ((header(req, 'apikey') ?? null) !== job.apikey) return { status: 405, json: { err: 'Access denied' } };
    const converted = job.outcome.sanitized;
    if (!converted || job.canceled || !isFinished(job, Date.now(), this.#options)) return missing;
    const name = sanitizedName(job.fileName);
    return {
      status: 200,
      raw: {
        body: converted,
        type: 'application/octet-stream',
        headers: { 'Content-Disposition': `attachment; filename="${name.replace(/["\\\r\n]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}` },
      },
    };
  }

  /** `GET /hash/{md5|sha1|sha256}` (§6): the newest finished job with that content, or a configured hash. */
  #hash(req: IncomingMessage, hash: string): Answer {
    const wanted = hash.toLowerCase();
    const rule = decodeHeader(header(req, 'rule'));
    const now = Date.now();
    let hit: Job | undefined;
    for (const job of this.#jobs.values()) {
      if (job.md5 !== wanted && job.sha1 !== wanted && job.sha256 !== wanted) continue;
      if (rule !== undefined && job.rule !== rule) continue;
      if (!job.canceled && isFinished(job, now, this.#options) && (!hit || job.submittedAt >= hit.submittedAt)) hit = job;
    }
    if (hit) return { status: 200, json: resultDocument(hit, now, this.#options, this.#url) };
    const listed = this.#options.hashes.find((h) => h.sha256.toLowerCase() === wanted);
    if (listed) {
      // Known from an earlier life of this node: a finished result without a file behind it.
      const job: Job = {
        dataId: wanted.slice(0, 32),
        fileName: listed.name,
        size: 0,
        md5: '',
        sha1: '',
        sha256: wanted,
        fileType: 'application/octet-stream',
        submittedAt: now - this.#options.scanDurationMs - postProcessingMs(this.#options) - 1,
        apikey: null,
        userAgent: '',
        rule: this.#options.rules[0]!.name,
        metadata: undefined,
        batchId: null,
        outcome: scanFile(Buffer.alloc(0), listed.name, wanted, this.#options),
        canceled: false,
      };
      return { status: 200, json: resultDocument(job, now, this.#options, this.#url) };
    }
    return { status: this.#options.hashNotFoundStatus, json: { [hash]: 'Not Found' } };
  }

  /** `POST /file/{id}/cancel` for a data_id or (published path, §7) a batch_id. */
  #cancel(id: string): Answer {
    const batch = this.#batches.get(id);
    if (batch) return this.#cancelBatch(batch);
    const job = this.#jobs.get(id);
    if (!job) return { status: 404, json: { err: 'Not found' } };
    if (!isFinished(job, Date.now(), this.#options)) job.canceled = true;
    return { status: 200, json: { [id]: 'cancelled' } };
  }

  #cancelBatch(batch: Batch): Answer {
    const now = Date.now();
    for (const id of batch.files) {
      const job = this.#jobs.get(id);
      if (job && !isFinished(job, now, this.#options)) job.canceled = true;
    }
    batch.closed = true;
    return { status: 200, json: { [batch.batchId]: 'cancelled' } };
  }

  /** §7: open, status, close, close via callback, certificate, cancel. */
  #batch(req: IncomingMessage, url: URL, method: string, batchId: string | undefined): Answer {
    if (batchId === undefined) {
      const rule = this.#ruleFor(req);
      if (typeof rule !== 'string') return rule;
      const userData = decodeHeader(header(req, 'user-data')) ?? '';
      if (Buffer.byteLength(userData) > 1024) return { status: 400, json: { err: 'user-data is longer than 1024 bytes.' } };
      return { status: 200, json: { batch_id: this.#openBatch(req, rule, userData).batchId } };
    }
    const batch = this.#batches.get(batchId);
    if (!batch) return { status: 404, json: { err: 'Batch not found.' } };
    const action = url.pathname.slice(`/file/batch/${batchId}`.length);
    const now = Date.now();
    const status = () =>
      batchStatus(batch, this.#jobs, now, this.#options, {
        first: Number(url.searchParams.get('first') ?? 0) || 0,
        size: Number(url.searchParams.get('size') ?? 50) || 50,
      });
    const unfinished = () => batch.files.some((id) => {
      const job = this.#jobs.get(id);
      return job !== undefined && !isFinished(job, now, this.#options);
    });
    switch (`${method} ${action}`) {
      case 'GET ':
        return { status: 200, json: status() };
      case 'POST /close':
        if (this.#options.batchCloseRequiresFinished && unfinished()) return { status: 400, json: { err: 'Batch is still processing.' } };
        batch.closed = true;
        return { status: 200, json: status() };
      case 'POST /close/callback': {
        const callback = header(req, 'callbackurl');
        if (callback === undefined) return { status: 403, json: { err: 'No callback url given.' } };
        if (batch.closed) return { status: 400, json: { err: 'Batch is already closed.' } };
        // The emulator records the URL but does not deliver the webhook (README.md).
        batch.closed = true;
        return { status: 200, json: { [batchId]: 'Callback url set' } };
      }
      case 'GET /certificate':
        if (!batch.closed) return { status: 400, json: { err: 'Batch is not closed.' } };
        return { status: 200, raw: { body: batchCertificate(status(), this.#signer, { tamper: this.#faults.tamperCertificate() }), type: 'text/plain' } };
      case 'POST /cancel':
        return this.#cancelBatch(batch);
      default:
        return notFoundEndpoint();
    }
  }

  #openBatch(req: IncomingMessage, rule: string, userData: string): Batch {
    const batch: Batch = {
      batchId: newId(),
      userData,
      rule,
      userAgent: header(req, 'user_agent') ?? '',
      apikey: header(req, 'apikey') ?? null,
      closed: false,
      files: [],
    };
    this.#batches.set(batch.batchId, batch);
    return batch;
  }

  /** The rule a request asks for (`rule`, else the deprecated `workflow`, else the first), or a 403. */
  #ruleFor(req: IncomingMessage): string | Answer {
    const asked = decodeHeader(header(req, 'rule') ?? header(req, 'workflow'));
    const agent = header(req, 'user_agent') ?? '';
    const rule = asked === undefined || asked === '' ? this.#options.rules[0]! : this.#options.rules.find((r) => r.name === asked);
    if (!rule || (rule.userAgents && !rule.userAgents.includes(agent))) return { status: 403, json: { err: 'Access denied' } };
    return rule.name;
  }

  #authenticate(req: IncomingMessage): Answer | null {
    const keys = this.#options.apikeys;
    if (keys.length === 0) return null;
    const key = header(req, 'apikey');
    if (key !== undefined && keys.includes(key)) return null;
    return { status: this.#options.authErrorStatus, json: { err: key === undefined ? 'Apikey is required.' : 'Invalid apikey.' } };
  }

  #queued(): number {
    const now = Date.now();
    let n = 0;
    for (const job of this.#jobs.values()) if (!isFinished(job, now, this.#options)) n++;
    return n;
  }

  /** Drops jobs past retention, at most once a second. */
  #sweep(): void {
    const now = Date.now();
    if (now - this.#lastSweep < 1000) return;
    this.#lastSweep = now;
    const horizon = now - this.#options.scanDurationMs - postProcessingMs(this.#options) - this.#options.jobRetentionMs;
    for (const [id, job] of this.#jobs) if (job.submittedAt < horizon) this.#jobs.delete(id);
  }

  #send(req: IncomingMessage, res: ServerResponse, answer: Answer, route: Route, entry: RequestLogEntry | null): void {
    if (entry) entry.status = answer.status;
    if (answer.close) {
      res.setHeader('Connection', 'close');
      // Body bytes we never read would be parsed as the next request: stop reading them.
      res.once('finish', () => req.socket.destroy());
    }
    if (answer.raw) {
      const body = typeof answer.raw.body === 'string' ? Buffer.from(answer.raw.body) : answer.raw.body;
      res.writeHead(answer.status, { 'Content-Type': answer.raw.type, 'Content-Length': body.length, ...answer.raw.headers });
      res.end(body);
      return;
    }
    let text = JSON.stringify(answer.json ?? {});
    if (answer.status === 200 && this.#faults.malformed(route)) text = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
    const body = Buffer.from(text);
    res.writeHead(answer.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length, ...answer.headers });
    res.end(body);
  }

  #log(req: IncomingMessage, path: string, route: Route | 'unknown', id: string | undefined): RequestLogEntry {
    const headers: Record<string, string> = {};
    for (const name of LOGGED_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const entry: RequestLogEntry = { seq: ++this.#seq, method: req.method ?? '', path, route, id, headers, at: performance.now(), status: 'pending' };
    const log = this.#stats.requests;
    if (this.#options.requestLogLimit > 0) {
      log.push(entry);
      if (log.length > this.#options.requestLogLimit) log.splice(0, log.length - this.#options.requestLogLimit);
    }
    return entry;
  }

  /**
   * Takes half of the declared upload, then resets the connection (RST, not a polite FIN) while
   * the client is still sending: nothing is answered and nothing is scanned.
   */
  async #resetMidUpload(req: IncomingMessage): Promise<void> {
    const half = Math.floor((Number(req.headers['content-length']) || 0) / 2);
    let seen = 0;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        req.off('data', onData).off('end', done).off('close', done);
        resolve();
      };
      const onData = (chunk: Buffer): void => {
        seen += chunk.length;
        if (seen >= half) done();
      };
      if (half === 0) return done();
      req.on('data', onData).once('end', done).once('close', done);
    });
    req.socket.resetAndDestroy();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }
}
