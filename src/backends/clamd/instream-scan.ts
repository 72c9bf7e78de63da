/**
 * One INSTREAM scan on one connection (spec §3), fed while the body arrives.
 *
 *   acquiring ─► connecting ─► streaming ─────────► awaiting-reply ─► done
 *   (slot on an   (connect_     zINSTREAM\0, then    after end(): 00 00 00 00,
 *    endpoint)     timeout_ms)  <len><bytes>…        read_timeout_ms for the verdict
 *        ▲             │
 *        └─ connect failed: once more on another endpoint (nothing was sent yet)
 *
 * The slot is a lease from the generic endpoint pool (src/backends/pool); how the scan went is
 * reported back on release, for passive health: a reply → ok; a failed connect, a lost
 * connection or no verdict in time → failure (plus a PING now); clamd's queue-full silence →
 * down (ejected for the cool-down).
 *
 * Any phase can jump to done: a reply (clamd may answer early and close), the byte budget
 * (stream_max_bytes: we stop before clamd would refuse), a lost connection, a timeout, clamd's
 * silent queue-full state (detected by a PING probe when the socket stalls), abort().
 * Body chunks wait in a small queue (before the connection is up, and until the next flush);
 * write() returns false once that queue plus the socket's buffer reach chunk_bytes.
 *
 * `transfer: path` uses the same machinery with `scanPath` set: the command is `zSCAN <path>`,
 * no body is written, end() right away; the reply names the path instead of `stream`. A reply
 * saying clamd could not read the file sets `refused` (the caller then sends the body by INSTREAM).
 */
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { BackendResult, ScanErrorKind, StreamingScan } from '../backend.js';
import { PoolUnavailableError, type LeaseOutcome } from '../pool/endpoint-pool.js';
import type { PooledEndpoints, PooledLease } from '../pool/pooled-endpoints.js';
import type { ClamdBackendConfig } from './clamd-config.js';
import { connectSocket, describeSocketError, type CommandOutcome } from './clamd-connection.js';
import type { ClamdEndpoint } from './clamd-endpoint.js';
import { chunkHeader, END_OF_STREAM, INSTREAM_COMMAND, parsePathScanReply, parseScanReply, ReplyReader, type ScanReply } from './protocol.js';

type Phase = 'acquiring' | 'connecting' | 'streaming' | 'awaiting-reply' | 'done';

/**
 * Why a scan failed in a way a replay of the spooled body elsewhere may fix: no connection, a
 * connection lost before the verdict, clamd's queue-full silence. Such a result is marked
 * `retryable`.
 */
export type ScanFailure = 'connect' | 'connection-lost' | 'queue-full' | null;

/** Stall probes (PING on a fresh connection) per scan, so a slow scan costs at most this many. */
const MAX_PROBES = 3;
/** The abort reason that ends a wait for a slot once the scan is over (see #settle). */
const SCAN_SETTLED = new Error('scan settled');

/** How one scan (one InstreamScan) ended, for the caller that may replay or fall back. */
export interface ScanAttempt {
  readonly result: BackendResult;
  readonly failure: ScanFailure;
  readonly tried: ReadonlySet<string>;
  /** SCAN by path: clamd did not read the file (see InstreamScan.refused). */
  readonly refused: string | null;
}

export interface InstreamDeps {
  readonly backend: string;
  readonly config: ClamdBackendConfig;
  readonly pool: PooledEndpoints<ClamdEndpoint>;
  /** PING on a fresh connection: tells "busy scanning" (PONG) from "queue full, not accepting" (silent). */
  readonly probe: (endpoint: ClamdEndpoint) => Promise<CommandOutcome>;
  /** Runs the pool's health check of endpoint `id` now (after a failed or lost connection). */
  readonly checkEndpoint: (id: string) => void;
  /** Called once when the scan is done, whatever the outcome. */
  readonly onDone?: (scan: InstreamScan) => void;
}

export interface InstreamOptions {
  readonly signal: AbortSignal;
  /** Connects tried at most: 2 = retry once on another endpoint after a connect failure. */
  readonly connectAttempts: number;
  /** Pool endpoint ids already tried by an earlier attempt of the same scan. */
  readonly exclude?: ReadonlySet<string>;
  /** SCAN by path instead of INSTREAM: the file and its command (protocol.ts scanPathCommand). */
  readonly scanPath?: { readonly path: string; readonly command: Buffer };
}

export class InstreamScan implements StreamingScan {
  readonly #deps: InstreamDeps;
  readonly #opts: InstreamOptions;
  readonly #started = performance.now();
  readonly #tried: Set<string>;
  readonly #result: Promise<BackendResult>;
  #resolve!: (result: BackendResult) => void;

  #phase: Phase = 'acquiring';
  #attempts = 0;
  #lease: PooledLease<ClamdEndpoint> | null = null;
  /** What the lease reports on release (passive health); set where the scan learns it. */
  #leaseOutcome: LeaseOutcome = 'neutral';
  /** Ends a wait for a slot when the scan ends first (abort, close). */
  readonly #acquireAbort = new AbortController();
  /** Kept after the lease is released, to name the endpoint in the result. */
  #lastEndpoint: ClamdEndpoint | null = null;
  #socket: Socket | null = null;
  #socketError: string | null = null;
  #lastConnectError: string | null = null;
  readonly #reader = new ReplyReader();

  #endCalled = false;
  #commandSent = false;
  /** Body bytes accepted (queued or sent); never more than stream_max_bytes. */
  #bytes = 0;
  /** Body chunks not written to the socket yet (before connect, or until the next flush). */
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #flushScheduled = false;
  #needDrain = false;
  #drainListeners: (() => void)[] = [];

  #readTimer: NodeJS.Timeout | null = null;
  #stallTimer: NodeJS.Timeout | null = null;
  /** While the stream waits for clamd to read (no drain): ends the scan after read_timeout_ms. */
  #writeTimer: NodeJS.Timeout | null = null;
  #probes = 0;

  /** Set when the scan ended in a way a replay on another endpoint could fix. */
  failure: ScanFailure = null;
  /** SCAN by path: why clamd did not read the file (nothing was scanned); null otherwise. */
  refused: string | null = null;

  constructor(deps: InstreamDeps, opts: InstreamOptions) {
    this.#deps = deps;
    this.#opts = opts;
    this.#tried = new Set(opts.exclude);
    this.#result = new Promise((resolve) => (this.#resolve = resolve));
    if (opts.signal.aborted) {
      this.abort(describe(opts.signal.reason));
      return;
    }
    opts.signal.addEventListener('abort', this.#onSignal, { once: true });
    void this.#acquire();
  }

  /** The endpoint of the last connection attempt. */
  get endpoint(): ClamdEndpoint | null {
    return this.#lease?.resource ?? this.#lastEndpoint;
  }

  get done(): boolean {
    return this.#phase === 'done';
  }

  /** Pool endpoint ids this scan connected to or tried. */
  get tried(): ReadonlySet<string> {
    return this.#tried;
  }

  // ── StreamingScan ───────────────────────────────────────────────────────────────────────────

  write(chunk: Buffer): boolean {
    // Once a result is decided (too large, early reply, failure) the rest is discarded at full
    // speed, so the transaction is never held back by a scan that is already over.
    if (this.#phase === 'done' || this.#endCalled) return true;
    if (chunk.length === 0) return !this.#needDrain;
    const max = this.#deps.config.stream_max_bytes;
    if (this.#bytes + chunk.length > max) {
      // Spec §3: clamd would answer "INSTREAM size limit exceeded. ERROR" and close; never send past it.
      this.#finish('too-large', `body exceeds stream_max_bytes (${max} bytes); not sent past the limit`);
      return true;
    }
    this.#bytes += chunk.length;
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#scheduleFlush();
    if (this.#queuedBytes + (this.#socket?.writableLength ?? 0) < this.#deps.config.chunk_bytes) return true;
    this.#needDrain = true;
    return false;
  }

  onDrain(listener: () => void): void {
    if (!this.#needDrain || this.#phase === 'done') queueMicrotask(listener);
    else this.#drainListeners.push(listener);
  }

  end(): Promise<BackendResult> {
    if (!this.#endCalled) {
      this.#endCalled = true;
      this.#scheduleFlush();
    }
    return this.#result;
  }

  abort(reason: string): void {
    this.#finish('backend-error', `scan aborted: ${reason}`);
  }

  // ── connecting ──────────────────────────────────────────────────────────────────────────────

  readonly #onSignal = (): void => this.abort(describe(this.#opts.signal.reason));

  async #acquire(): Promise<void> {
    let lease: PooledLease<ClamdEndpoint>;
    try {
      lease = await this.#deps.pool.acquire({ exclude: this.#tried, signal: this.#acquireAbort.signal });
    } catch (err) {
      if (this.#phase === 'done') return;
      const kind = err instanceof PoolUnavailableError ? err.kind : 'unreachable';
      const message = err instanceof Error ? err.message : String(err);
      switch (kind) {
        case 'unreachable':
          // No endpoint left to try (all tried, or none known).
          this.failure = 'connect';
          this.#finish('unreachable', this.#lastConnectError ?? `no clamd endpoint to try: ${message}`);
          return;
        case 'overloaded':
          this.#finish('overloaded', `clamd pool: ${message}`);
          return;
        case 'aborted':
          this.#finish('backend-error', message);
          return;
      }
    }
    if (this.#phase === 'done') {
      lease.release('neutral');
      return;
    }
    this.#attempts++;
    this.#lease = lease;
    this.#leaseOutcome = 'neutral';
    this.#lastEndpoint = lease.resource;
    this.#tried.add(lease.endpoint);
    this.#connect(lease.resource);
  }

  #connect(endpoint: ClamdEndpoint): void {
    this.#phase = 'connecting';
    const { connect_timeout_ms: timeoutMs } = this.#deps.config;
    const socket = connectSocket(endpoint.address);
    this.#socket = socket;
    let connected = false;
    const timer = setTimeout(() => this.#connectFailed(socket, `connect to ${endpoint.label} timed out after ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      if (socket === this.#socket) this.#onConnected();
    });
    socket.on('error', (err) => {
      if (socket !== this.#socket) return;
      if (!connected) {
        clearTimeout(timer);
        this.#connectFailed(socket, `cannot connect to ${endpoint.label}: ${describeSocketError(err)}`);
      } else {
        // EPIPE/ECONNRESET while writing: clamd may have answered and closed (spec §3) — a
        // reply already read decides; otherwise 'close' reports the lost connection.
        this.#socketError ??= describeSocketError(err);
      }
    });
    socket.on('data', (data: Buffer) => {
      if (socket === this.#socket) this.#onData(data);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (socket === this.#socket && connected) this.#onClose(endpoint);
    });
    socket.on('drain', () => {
      if (socket === this.#socket) this.#onSocketDrain();
    });
  }

  #connectFailed(socket: Socket, message: string): void {
    if (this.#phase !== 'connecting' || socket !== this.#socket) return;
    socket.destroy();
    this.#socket = null;
    const id = this.#lease?.endpoint;
    this.#lease?.release('failure', message);
    this.#lease = null;
    // Down, or was it this one connection? A PING decides the endpoint's health now.
    if (id !== undefined) this.#deps.checkEndpoint(id);
    this.#lastConnectError = message;
    // No body byte left this process yet, so another endpoint can take the scan from the start.
    if (this.#attempts < this.#opts.connectAttempts) {
      this.#phase = 'acquiring';
      void this.#acquire();
      return;
    }
    this.failure = 'connect';
    this.#finish('unreachable', message);
  }

  #onConnected(): void {
    this.#phase = 'streaming';
    this.#flush();
  }

  // ── streaming ───────────────────────────────────────────────────────────────────────────────

  /**
   * Writes happen in a setImmediate, never straight from write(): the poll phase before it reads
   * whatever clamd already sent. clamd answers early and closes (e.g. its own size limit, spec
   * §3); a write after that fails with EPIPE/ECONNRESET, and Node destroys the socket on a write
   * error without reading what is still in the receive buffer — the reply would be lost.
   */
  #scheduleFlush(): void {
    if (this.#flushScheduled || (this.#phase !== 'streaming' && this.#phase !== 'awaiting-reply')) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Sends the command (once), the queued body as `<len><bytes>` frames of at most chunk_bytes, and the terminator after end(). */
  #flush(): void {
    const socket = this.#socket;
    if (socket === null || (this.#phase !== 'streaming' && this.#phase !== 'awaiting-reply')) return;
    const size = this.#deps.config.chunk_bytes;
    socket.cork();
    if (!this.#commandSent) {
      socket.write(this.#opts.scanPath?.command ?? INSTREAM_COMMAND);
      this.#commandSent = true;
    }
    for (const chunk of this.#queue) {
      for (let at = 0; at < chunk.length; at += size) {
        const piece = chunk.subarray(at, Math.min(at + size, chunk.length));
        socket.write(chunkHeader(piece.length));
        socket.write(piece);
      }
    }
    this.#queue = [];
    this.#queuedBytes = 0;
    const terminate = this.#endCalled && this.#phase === 'streaming';
    // SCAN by path is complete with its command; only INSTREAM has a terminator chunk.
    if (terminate && this.#opts.scanPath === undefined) socket.write(END_OF_STREAM);
    socket.uncork();
    if (terminate) this.#awaitReply();
    if (!socket.writableNeedDrain) this.#releaseDrainWaiters();
    else if (this.#phase === 'streaming') {
      this.#armStallProbe();
      this.#armWriteTimer();
    }
  }

  #onSocketDrain(): void {
    if (this.#phase === 'streaming') this.#clearStallProbe();
    this.#clearWriteTimer();
    if (this.#queuedBytes === 0) this.#releaseDrainWaiters();
  }

  /**
   * clamd that reads none of the stream for read_timeout_ms ends the scan as a timeout. The PING
   * probes below tell a full queue from a busy clamd, but a busy one (PONG) is waited for only as
   * long as a verdict would be after the last byte: without this, a clamd (or a proxy in front of
   * it) that answers PING yet never reads this connection held scan() for ever, and with it the
   * transaction, its temp files and, after a reload, the retired generation.
   */
  #armWriteTimer(): void {
    if (this.#writeTimer !== null) return;
    const { read_timeout_ms: timeoutMs } = this.#deps.config;
    this.#writeTimer = setTimeout(() => {
      this.#writeTimer = null;
      this.#leaseOutcome = 'failure';
      this.#finish('timeout', `${this.#lease?.resource.label ?? 'clamd'} read none of the stream for ${timeoutMs} ms`);
    }, timeoutMs);
  }

  #clearWriteTimer(): void {
    if (this.#writeTimer !== null) clearTimeout(this.#writeTimer);
    this.#writeTimer = null;
  }

  #releaseDrainWaiters(): void {
    this.#needDrain = false;
    const listeners = this.#drainListeners;
    this.#drainListeners = [];
    for (const listener of listeners) listener();
  }

  #awaitReply(): void {
    this.#phase = 'awaiting-reply';
    // From the last byte on, read_timeout_ms bounds the wait for the verdict instead.
    this.#clearWriteTimer();
    const { read_timeout_ms: timeoutMs } = this.#deps.config;
    const label = this.#lease!.resource.label;
    this.#readTimer = setTimeout(() => {
      this.#leaseOutcome = 'failure';
      this.#finish('timeout', `no verdict from ${label} within ${timeoutMs} ms after the last byte`);
    }, timeoutMs);
    this.#clearStallProbe();
    this.#armStallProbe();
  }

  // ── clamd's silence: busy, or not accepting? ────────────────────────────────────────────────

  /**
   * When clamd's queue is full it stops calling accept() and says nothing (spec §5): the kernel
   * still completes our handshake and buffers what we write, so the connect succeeds and then
   * nothing happens — the socket stops draining, or no verdict comes. After connect_timeout_ms of
   * that, a PING on a fresh connection tells the cases apart: PONG means clamd is alive and merely
   * busy (keep waiting, up to read_timeout_ms), silence means it is not accepting: 'overloaded'.
   */
  #armStallProbe(): void {
    if (this.#stallTimer !== null || this.#probes >= MAX_PROBES) return;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = null;
      void this.#probe();
    }, this.#deps.config.connect_timeout_ms);
  }

  #clearStallProbe(): void {
    if (this.#stallTimer !== null) clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
  }

  async #probe(): Promise<void> {
    const endpoint = this.#lease?.resource;
    if (endpoint === undefined || this.#phase === 'done') return;
    this.#probes++;
    const outcome = await this.#deps.probe(endpoint);
    if (this.done || this.#lease?.resource !== endpoint) return;
    if (outcome.kind === 'silent') {
      const message = `${endpoint.label} is not accepting connections (clamd queue full: MaxQueue reached): ${outcome.message}`;
      // Out for the cool-down; the body never reached a scanner, so a replay elsewhere may work.
      this.#leaseOutcome = 'down';
      this.failure = 'queue-full';
      this.#finish('overloaded', message);
      return;
    }
    // Still stalled after a PONG (a long scan, a slow disk): look again later, a bounded number of times.
    if (this.#phase === 'awaiting-reply' || this.#socket?.writableNeedDrain === true) this.#armStallProbe();
  }

  // ── the reply ───────────────────────────────────────────────────────────────────────────────

  #onData(data: Buffer): void {
    if (this.#phase === 'done') return;
    if (this.#reader.push(data)) this.#onReply(this.#reader.text!, true);
    else if (this.#reader.state === 'overflow') {
      this.#leaseOutcome = 'failure';
      this.#finish('backend-error', `${this.#lease!.resource.label} sent a reply longer than the limit`);
    }
  }

  #onReply(text: string, terminated: boolean): void {
    const endpoint = this.#lease!.resource;
    // Whatever it says, clamd answered: the endpoint is alive.
    this.#leaseOutcome = 'ok';
    const path = this.#opts.scanPath?.path;
    const reply = path === undefined ? parseScanReply(text) : parsePathScanReply(text, path);
    // "Clean" is believed only as the answer to a complete stream and a complete reply.
    if (reply.verdict === 'clean' && this.#phase !== 'awaiting-reply') {
      this.#finish('backend-error', `${endpoint.label} answered ${JSON.stringify(text)} before the end of the stream`);
    } else if (reply.verdict === 'clean' && !terminated) {
      this.#finish('backend-error', `${endpoint.label} closed the connection after ${JSON.stringify(text)} without the terminator`);
    } else {
      this.#finishWith(reply);
    }
  }

  #onClose(endpoint: ClamdEndpoint): void {
    if (this.#phase === 'done') return;
    const partial = this.#reader.state === 'reading' ? this.#reader.partial : '';
    if (partial !== '') {
      this.#onReply(partial, false);
      return;
    }
    const why = this.#socketError === null ? '' : ` (${this.#socketError})`;
    let message = `${endpoint.label} closed the connection without a reply${why}`;
    if (this.#phase === 'streaming' && this.#socketError !== null) {
      // A write failed before any reply could be read. clamd may have died, or answered early
      // and closed (spec §3) faster than Node could read it: Node destroys a socket on a write
      // error without reading what is still buffered, a race no client-side code can close.
      message += ` after ${this.#bytes} body bytes (clamd died, or closed the stream early: is its StreamMaxLength below stream_max_bytes, ${this.#deps.config.stream_max_bytes}?)`;
    }
    this.failure = 'connection-lost';
    this.#leaseOutcome = 'failure';
    const id = this.#lease?.endpoint;
    this.#finish('backend-error', message);
    // Dead, or alive and merely closing this one connection? A PING decides the endpoint's health.
    if (id !== undefined) this.#deps.checkEndpoint(id);
  }

  // ── the end ─────────────────────────────────────────────────────────────────────────────────

  #finishWith(reply: ScanReply): void {
    switch (reply.verdict) {
      case 'clean':
        this.#settle({ outcome: 'clean', backend: this.#deps.backend, durationMs: this.#elapsed() });
        return;
      case 'infected':
        this.#settle({ outcome: 'infected', backend: this.#deps.backend, durationMs: this.#elapsed(), threats: [reply.threat] });
        return;
      case 'error':
        this.#finish(reply.kind, reply.message);
        return;
      case 'inaccessible':
        // Nothing was scanned: an error here, and the caller's cue to send the bytes instead.
        this.refused = reply.reason;
        this.#finish('backend-error', reply.reason);
        return;
    }
  }

  #finish(kind: ScanErrorKind, message: string): void {
    this.#settle({ outcome: 'error', backend: this.#deps.backend, durationMs: this.#elapsed(), kind, message });
  }

  #settle(outcome: BackendResult): void {
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    // The endpoint that gave (or failed to give) the answer, for the access log and metrics.
    const endpoint = this.endpoint?.label;
    let result: BackendResult = endpoint === undefined ? outcome : { ...outcome, endpoint };
    // A stream cannot replay itself, but whoever holds the whole body can (run-scans.ts).
    if (result.outcome === 'error' && this.failure !== null) result = { ...result, retryable: true };
    if (this.#readTimer !== null) clearTimeout(this.#readTimer);
    this.#readTimer = null;
    this.#clearStallProbe();
    this.#clearWriteTimer();
    this.#opts.signal.removeEventListener('abort', this.#onSignal);
    // One connection per scan: whatever clamd still has to say, we are done with it.
    this.#socket?.destroy();
    // With a reason: abort() without one builds a DOMException, stack trace and all, once per scan
    // (≈ 2.6 % of the event loop's time with 1 MiB bodies via clamd, BENCHMARKS.md, Session 17).
    // Nothing reads it: a wait still pending only ends.
    this.#acquireAbort.abort(SCAN_SETTLED);
    this.#lease?.release(this.#leaseOutcome, result.outcome === 'error' ? result.message : undefined);
    this.#lease = null;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#resolve(result);
    this.#releaseDrainWaiters();
    this.#deps.onDone?.(this);
  }

  #elapsed(): number {
    return performance.now() - this.#started;
  }
}

function describe(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
