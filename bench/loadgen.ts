/**
 * ICAP load generator (library + CLI).
 *
 *   node --import tsx bench/loadgen.ts --host 127.0.0.1 --port 1344 --service echo \
 *     --scenario respmod-4k --connections 16 --duration 5 [--warmup 1] [--preview 1024] [--json]
 *   node --import tsx bench/loadgen.ts ... --count 10000        # stop after N requests instead
 *   node --import tsx bench/loadgen.ts ... --probe              # one request, print raw response
 *
 * Model: C virtual clients, each owning one persistent TCP connection and sending its requests
 * sequentially (closed loop, no pipelining). Request bytes are built once per run and the same
 * Buffers are written for every request; responses are framed by bench/lib/framing.ts without
 * copying bodies. With a preview the client sends the preview part, waits for 100 Continue,
 * then sends the rest (a final response to the preview ends the transaction instead).
 *
 * Timeline: warm-up (not recorded) → measurement window (duration or count) → drain (requests in
 * flight finish, not recorded; bounded) → sockets closed. Latency is measured from the first write
 * of a request to the start of the event-loop turn whose read brought the end of its final response
 * (bench/lib/io-turn-clock.ts): the generator's own work on the other answers of that turn is not
 * the server's latency. That work is reported apart, as generatorQueueMs. cycleMs is a connection's
 * whole cycle per answer, the generator's delay in sending included. CPU use is this process's own,
 * over the window.
 */
import * as net from 'node:net';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { FramingError, IcapMessageScanner, type IcapHead } from './lib/framing.js';
import {
  SCENARIO_NAMES,
  buildScenario,
  isScenarioName,
  type BuiltRequest,
  type ScenarioName,
} from './lib/scenarios.js';
import { ioTurnStart } from './lib/io-turn-clock.js';
import { SampleBuffer, latencySummaryMs, round } from './lib/stats.js';
import { writeLatencyTrace } from './lib/monotonic-trace.js';

export interface LoadOptions {
  host: string;
  port: number;
  service: string;
  scenario: ScenarioName;
  connections: number;
  /** Measurement window in seconds (used when `count` is not set). */
  durationS: number;
  /** Stop after this many measured requests instead of after `durationS`. */
  count?: number | undefined;
  /** Warm-up seconds before measuring (0 = none). */
  warmupS: number;
  preview?: number | undefined;
  /** A request with no final response after this long counts as a timeout error. */
  requestTimeoutMs: number;
  /** Hard cap on the whole run (warm-up + window + drain), seconds. */
  maxSeconds: number;
  /**
   * Open loop: requests per second over all connections, on a fixed schedule (the native
   * generator only, bench/native/icap-native.c --rate). Absent: the closed loop, each connection
   * sending again as soon as it has its answer.
   */
  offeredRate?: number | undefined;
  /** Called when the measurement window opens and closes (bench/lib/load-threads.ts lines threads up). */
  onWindow?: ((edge: 'start' | 'end') => void) | undefined;
  /**
   * Write every measured 2xx answer's (sent at, latency) here when the run ends, the send time on
   * the machine's monotonic clock (bench/lib/monotonic-trace.ts), for bench/tail-vs-gc.ts.
   */
  traceOut?: string | undefined;
}

export const DEFAULT_LOAD_OPTIONS = {
  host: '127.0.0.1',
  port: 1344,
  service: 'echo',
  scenario: 'options',
  connections: 1,
  durationS: 5,
  warmupS: 1,
  requestTimeoutMs: 30_000,
  maxSeconds: 600,
} as const satisfies Partial<LoadOptions>;

export interface LoadResult {
  tool: 'icap-bridge-bench/loadgen';
  scenario: ScenarioName;
  preview: number | null;
  target: { host: string; port: number; service: string };
  connections: number;
  mode: 'duration' | 'count';
  warmupS: number;
  /** Length of the measurement window, seconds. */
  durationS: number;
  /** Final responses received in the window (any status). */
  requests: number;
  /** Final responses with a 2xx status. */
  ok: number;
  /** ok / durationS. */
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /**
   * From the start of the turn that read a final response to the generator handling it: the
   * generator's own queueing behind the other answers of that turn, not part of latencyMs. With
   * several generator threads, p50/p90/p99/max are the highest of the threads' and mean is weighted.
   */
  generatorQueueMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /**
   * A connection's whole cycle per answer: from the turn that read its previous answer (or from its
   * first request) to the turn that read this one, so the generator's delay in sending is in it.
   * Its mean is connections / rate whatever the split; latencyMs leaves out the part spent waiting
   * for a busy generator, which is large when the generator's event loop is saturated (ELU ≈ 1).
   * Merged across threads like generatorQueueMs. Absent for direct INSTREAM.
   */
  cycleMs?: { p50: number; p90: number; p99: number; max: number; mean: number };
  /**
   * Open loop only (LoadOptions.offeredRate). latencyMs is still from each request's write;
   * latencyFromDueMs is from when the schedule said to send it, so a server that held every
   * connection busy pays for the requests that waited for one (no coordinated omission), and
   * sendLagMs is that wait (the generator's own timer slack included).
   */
  openLoop?: {
    offeredRate: number;
    latencyFromDueMs: { p50: number; p90: number; p99: number; max: number; mean: number };
    sendLagMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  };
  errors: { total: number; status: number; socket: number; timeout: number; framing: number };
  statuses: Record<string, number>;
  bytes: { sent: number; received: number };
  reconnects: number;
  cpu: {
    userMs: number;
    systemMs: number;
    /** (user + system) / window: 100 = one core fully used by the generator. */
    percentOfOneCore: number;
    /** Generator CPU per completed request, µs (1e6 / this ≈ its one-core capacity). */
    usPerRequest: number;
    /** Event-loop utilization over the window (near 1: the generator's loop is saturated). */
    eventLoopUtilization: number;
  };
  firstError: string | null;
}

type Phase = 'warmup' | 'measure' | 'drain' | 'done';
type ErrorKind = 'socket' | 'timeout' | 'framing';

const RECONNECT_DELAY_MS = 50;
const DRAIN_MAX_MS = 5_000;
const SWEEP_INTERVAL_MS = 250;

class LoadRun {
  readonly opts: LoadOptions;
  readonly request: BuiltRequest;
  phase: Phase = 'warmup';
  /** 0 while warming up, 1 once measuring: each request remembers the epoch it was sent in. */
  epoch = 0;
  readonly #clients: VirtualClient[] = [];
  readonly #latencies = new SampleBuffer();
  readonly #queueDelays = new SampleBuffer();
  readonly #cycles = new SampleBuffer();
  /** (sent at, latency) pairs, flattened, when opts.traceOut is set. */
  readonly #trace: SampleBuffer | null;
  readonly #resolve: (r: LoadResult, samples: Float64Array) => void;
  #t0 = 0;
  #t1 = 0;
  #cpu0: NodeJS.CpuUsage = { user: 0, system: 0 };
  #cpu: NodeJS.CpuUsage = { user: 0, system: 0 };
  #elu0: EventLoopUtilization | null = null;
  #elu = 0;
  #issuedMeasured = 0;
  #settledMeasured = 0;
  requests = 0;
  ok = 0;
  /** Count per final status code (index = status). */
  readonly statuses = new Uint32Array(1000);
  readonly errors = { status: 0, socket: 0, timeout: 0, framing: 0 };
  bytesSent = 0;
  bytesReceived = 0;
  reconnects = 0;
  firstError: string | null = null;
  #timers: NodeJS.Timeout[] = [];
  #sweeper: NodeJS.Timeout | null = null;

  constructor(opts: LoadOptions, request: BuiltRequest, resolve: (r: LoadResult, samples: Float64Array) => void) {
    this.opts = opts;
    this.request = request;
    this.#resolve = resolve;
    this.#trace = opts.traceOut === undefined ? null : new SampleBuffer();
  }

  start(): void {
    this.#timers.push(setTimeout(() => this.#abort('maxSeconds reached'), this.opts.maxSeconds * 1000));
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    if (this.opts.warmupS <= 0) this.#beginMeasure();
    else this.#timers.push(setTimeout(() => this.#beginMeasure(), this.opts.warmupS * 1000));
    for (let i = 0; i < this.opts.connections; i++) {
      const c = new VirtualClient(this);
      this.#clients.push(c);
      c.connect();
    }
  }

  get measuring(): boolean {
    return this.phase === 'measure';
  }

  /** May a client send another request now? Counts it if so. */
  takeRequest(): boolean {
    if (this.phase === 'warmup') return true;
    if (this.phase !== 'measure') return false;
    if (this.opts.count !== undefined) {
      if (this.#issuedMeasured >= this.opts.count) return false;
      this.#issuedMeasured++;
    }
    return true;
  }

  get wantsTraffic(): boolean {
    return this.phase === 'warmup' || this.phase === 'measure';
  }

  #counts(epoch: number): boolean {
    // Duration mode: whatever completes inside the window. Count mode: the N requests sent in it.
    return this.opts.count === undefined ? this.phase === 'measure' : epoch === 1 && this.phase === 'measure';
  }

  recordResponse(status: number, sentAt: number, latencyMs: number, queuedMs: number, cycleMs: number, epoch: number): void {
    if (!this.#counts(epoch)) return;
    this.requests++;
    this.statuses[status]!++;
    if (status >= 200 && status < 300) {
      this.ok++;
      this.#latencies.push(latencyMs);
      this.#queueDelays.push(queuedMs);
      this.#cycles.push(cycleMs);
      if (this.#trace !== null) {
        this.#trace.push(sentAt);
        this.#trace.push(latencyMs);
      }
    } else {
      this.errors.status++;
      this.firstError ??= `ICAP status ${status}`;
    }
    this.#settle();
  }

  recordError(kind: ErrorKind, err: unknown, epoch: number, inFlight: boolean): void {
    if (!this.measuring) return;
    this.errors[kind]++;
    this.firstError ??= `${kind}: ${err instanceof Error ? err.message : String(err)}`;
    if (inFlight && this.opts.count !== undefined && epoch === 1) this.#settle();
  }

  #settle(): void {
    if (this.opts.count !== undefined && ++this.#settledMeasured >= this.opts.count) this.#endMeasure();
  }

  onBytesReceived(n: number): void {
    if (this.phase === 'measure') this.bytesReceived += n;
  }

  onBytesSent(n: number): void {
    if (this.phase === 'measure') this.bytesSent += n;
  }

  /** A client has nothing in flight and will send no more. */
  clientIdle(): void {
    if (this.phase === 'drain' && this.#clients.every((c) => !c.inFlight)) this.#finish();
  }

  #beginMeasure(): void {
    if (this.phase !== 'warmup') return;
    this.phase = 'measure';
    this.epoch = 1;
    this.#t0 = performance.now();
    this.#cpu0 = process.cpuUsage();
    this.#elu0 = performance.eventLoopUtilization();
    this.opts.onWindow?.('start');
    if (this.opts.count === undefined) {
      this.#timers.push(setTimeout(() => this.#endMeasure(), this.opts.durationS * 1000));
    } else if (this.opts.count <= 0) {
      this.#endMeasure();
    }
  }

  #endMeasure(): void {
    if (this.phase !== 'measure') return;
    this.#t1 = performance.now();
    this.#cpu = process.cpuUsage(this.#cpu0);
    this.#elu = performance.eventLoopUtilization(this.#elu0 ?? undefined).utilization;
    this.opts.onWindow?.('end');
    this.phase = 'drain';
    this.#timers.push(setTimeout(() => this.#finish(), DRAIN_MAX_MS));
    for (const c of this.#clients) c.stopIfIdle();
    this.clientIdle();
  }

  #abort(reason: string): void {
    this.firstError ??= reason;
    if (this.phase === 'warmup') this.#beginMeasure();
    this.#endMeasure();
    this.#finish();
  }

  #sweep(): void {
    const now = performance.now();
    for (const c of this.#clients) c.checkTimeout(now, this.opts.requestTimeoutMs);
  }

  #finish(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    for (const t of this.#timers) clearTimeout(t);
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    for (const c of this.#clients) c.destroy();
    const sorted = this.#latencies.sorted();
    if (this.#trace !== null && this.opts.traceOut !== undefined) writeLatencyTrace(this.opts.traceOut, this.#trace.copy());
    this.#resolve(this.#result(sorted), sorted);
  }

  #result(sorted: Float64Array): LoadResult {
    const windowMs = Math.max(this.#t1 - this.#t0, 1e-6);
    const cpuUs = this.#cpu.user + this.#cpu.system;
    const errorsTotal = this.errors.status + this.errors.socket + this.errors.timeout + this.errors.framing;
    return {
      tool: 'icap-bridge-bench/loadgen',
      scenario: this.opts.scenario,
      preview: this.opts.preview ?? null,
      target: { host: this.opts.host, port: this.opts.port, service: this.opts.service },
      connections: this.opts.connections,
      mode: this.opts.count === undefined ? 'duration' : 'count',
      warmupS: this.opts.warmupS,
      durationS: round(windowMs / 1000, 3),
      requests: this.requests,
      ok: this.ok,
      rps: round(this.ok / (windowMs / 1000), 1),
      latencyMs: latencySummaryMs(sorted),
      generatorQueueMs: latencySummaryMs(this.#queueDelays.sorted()),
      cycleMs: latencySummaryMs(this.#cycles.sorted()),
      errors: { total: errorsTotal, ...this.errors },
      statuses: Object.fromEntries(
        [...this.statuses.entries()].filter(([, v]) => v > 0).map(([k, v]) => [String(k), v]),
      ),
      bytes: { sent: this.bytesSent, received: this.bytesReceived },
      reconnects: this.reconnects,
      cpu: {
        userMs: round(this.#cpu.user / 1000, 1),
        systemMs: round(this.#cpu.system / 1000, 1),
        percentOfOneCore: round((cpuUs / 1000 / windowMs) * 100, 1),
        usPerRequest: round(this.requests > 0 ? cpuUs / this.requests : Number.NaN, 2),
        eventLoopUtilization: round(this.#elu, 3),
      },
      firstError: this.firstError,
    };
  }
}

/** One persistent connection sending requests one after another. */
class VirtualClient {
  readonly #run: LoadRun;
  readonly #scanner: IcapMessageScanner;
  #socket: net.Socket | null = null;
  inFlight = false;
  #awaitingContinue = false;
  #startedAt = 0;
  /** ioTurnStart() of the read that fed the scanner last: when the response's bytes were there. */
  #readTurnAt = 0;
  /** Where this request's cycle began: the turn that read the previous answer, or the first send. */
  #cycleFrom = -1;
  #epoch = 0;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #stopped = false;
  readonly #readBuffer = Buffer.allocUnsafe(64 * 1024);

  constructor(run: LoadRun) {
    this.#run = run;
    this.#scanner = new IcapMessageScanner('response', { onMessage: (h) => this.#onMessage(h) });
  }

  connect(): void {
    if (this.#stopped) return;
    const { host, port } = this.#run.opts;
    // `onread` reuses one buffer per connection for every read: no per-read allocation.
    const socket = net.connect({
      host,
      port,
      onread: {
        buffer: this.#readBuffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          if (this.#socket !== socket) return false;
          this.#readTurnAt = ioTurnStart();
          this.#run.onBytesReceived(n);
          try {
            this.#scanner.feed(buf as Buffer, 0, n);
          } catch (err) {
            this.#fail(err instanceof FramingError ? 'framing' : 'socket', err);
          }
          return true;
        },
      },
    });
    this.#socket = socket;
    this.#scanner.reset();
    this.#cycleFrom = -1;
    socket.setNoDelay(true);
    socket.on('connect', () => this.#next());
    socket.on('error', (err) => {
      if (this.#socket === socket) this.#fail('socket', err);
    });
    socket.on('close', () => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      if (this.inFlight) {
        this.#fail('socket', new Error('connection closed by server mid-request'));
      } else {
        // Closed between requests (e.g. the server's keep-alive limit): reconnect quietly.
        this.#run.reconnects++;
        this.#scheduleReconnect(0);
      }
    });
  }

  #next(): void {
    const socket = this.#socket;
    if (socket === null) return;
    if (!this.#run.takeRequest()) {
      this.#stop();
      return;
    }
    const req = this.#run.request;
    this.#epoch = this.#run.epoch;
    this.inFlight = true;
    this.#startedAt = performance.now();
    if (this.#cycleFrom < 0) this.#cycleFrom = this.#startedAt;
    if (req.preview !== null) {
      this.#awaitingContinue = req.preview.rest !== null;
      socket.write(req.preview.first);
      this.#run.onBytesSent(req.preview.first.length);
    } else {
      this.#awaitingContinue = false;
      socket.write(req.full);
      this.#run.onBytesSent(req.full.length);
    }
  }

  #onMessage(head: IcapHead): void {
    if (head.status === 100) {
      const rest = this.#run.request.preview?.rest ?? null;
      if (!this.#awaitingContinue || rest === null || this.#socket === null) {
        this.#fail('framing', new Error('unexpected 100 Continue'));
        return;
      }
      this.#awaitingContinue = false;
      this.#socket.write(rest);
      this.#run.onBytesSent(rest.length);
      return;
    }
    if (head.status < 200 && head.status !== 100) {
      this.#fail('framing', new Error(`unexpected interim status ${head.status}`));
      return;
    }
    if (!this.inFlight) {
      this.#fail('framing', new Error(`unsolicited ${head.status} response`));
      return;
    }
    // A final response to the preview (204 or a full answer) ends the transaction: the rest
    // of the body is not sent (RFC 3507 §4.5).
    const handledAt = performance.now();
    this.inFlight = false;
    this.#awaitingContinue = false;
    this.#run.recordResponse(
      head.status,
      this.#startedAt,
      this.#readTurnAt - this.#startedAt,
      handledAt - this.#readTurnAt,
      this.#readTurnAt - this.#cycleFrom,
      this.#epoch,
    );
    this.#cycleFrom = this.#readTurnAt;
    if (head.close) {
      const s = this.#socket;
      this.#socket = null;
      s?.destroy();
      this.#run.reconnects++;
      this.#scheduleReconnect(0);
      return;
    }
    this.#next();
  }

  #fail(kind: ErrorKind, err: unknown): void {
    const wasInFlight = this.inFlight;
    this.#run.recordError(kind, err, this.#epoch, wasInFlight);
    this.inFlight = false;
    this.#awaitingContinue = false;
    const s = this.#socket;
    this.#socket = null;
    s?.destroy();
    this.#scanner.reset();
    this.#scheduleReconnect(RECONNECT_DELAY_MS);
  }

  #scheduleReconnect(delayMs: number): void {
    if (!this.#run.wantsTraffic || this.#stopped) {
      this.#stop();
      return;
    }
    if (this.#reconnectTimer !== null) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#run.wantsTraffic) this.connect();
      else this.#stop();
    }, delayMs);
  }

  checkTimeout(now: number, timeoutMs: number): void {
    if (this.inFlight && now - this.#startedAt > timeoutMs) {
      this.#fail('timeout', new Error(`no response within ${timeoutMs} ms`));
    }
  }

  /** Called when the window ends: a client with nothing in flight stops now. */
  stopIfIdle(): void {
    if (!this.inFlight) this.#stop();
  }

  #stop(): void {
    this.#stopped = true;
    if (this.#reconnectTimer !== null) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
    const s = this.#socket;
    this.#socket = null;
    s?.destroy();
    this.#run.clientIdle();
  }

  destroy(): void {
    this.#stopped = true;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const s = this.#socket;
    this.#socket = null;
    s?.destroy();
  }
}

export function runLoad(options: Partial<LoadOptions> & Pick<LoadOptions, 'scenario'>): Promise<LoadResult> {
  return runLoadWithSamples(options).then((r) => r.result);
}

/** runLoad, plus the sorted latency samples (ms) of the window, for merging several generators. */
export function runLoadWithSamples(
  options: Partial<LoadOptions> & Pick<LoadOptions, 'scenario'>,
): Promise<{ result: LoadResult; samples: Float64Array }> {
  const opts: LoadOptions = { ...DEFAULT_LOAD_OPTIONS, ...options };
  validateOptions(opts);
  const request = buildScenario(opts.scenario, opts, { preview: opts.preview });
  return new Promise((resolve) => new LoadRun(opts, request, (result, samples) => resolve({ result, samples })).start());
}

function validateOptions(o: LoadOptions): void {
  const intIn = (name: string, v: number, min: number, max: number): void => {
    if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  };
  intIn('port', o.port, 1, 65535);
  intIn('connections', o.connections, 1, 10_000);
  if (o.count !== undefined) intIn('count', o.count, 1, 1e9);
  if (o.preview !== undefined) intIn('preview', o.preview, 0, 1 << 30);
  if (!(o.durationS > 0 && o.durationS <= 3600)) throw new RangeError(`duration must be in (0, 3600] s, got ${o.durationS}`);
  if (!(o.warmupS >= 0 && o.warmupS <= 600)) throw new RangeError(`warmup must be in [0, 600] s, got ${o.warmupS}`);
  if (!(o.maxSeconds > 0)) throw new RangeError(`maxSeconds must be > 0`);
  if (!isScenarioName(o.scenario)) throw new RangeError(`unknown scenario ${String(o.scenario)}`);
  // The open loop is the native generator's alone (bench/native/icap-native.c --rate): refused here rather than silently run closed.
  if (o.offeredRate !== undefined) throw new RangeError('offeredRate (an open loop) needs the native generator (bench/lib/native-tools.ts)');
}

export interface ProbeResult {
  /** Every response received for the request (interim 100 included), raw bytes. */
  raw: Buffer;
  statuses: number[];
}

/**
 * Sends one request of a scenario on a fresh connection and returns the raw response bytes
 * (for inspecting a server's framing and headers). Bounded by `timeoutMs`.
 */
export function probeOnce(
  o: Pick<LoadOptions, 'host' | 'port' | 'service' | 'scenario'> & { preview?: number | undefined; timeoutMs?: number },
): Promise<ProbeResult> {
  const req = buildScenario(o.scenario, o, { preview: o.preview });
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const statuses: number[] = [];
    const socket = net.connect({ host: o.host, port: o.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`probe: no complete response within ${o.timeoutMs ?? 5000} ms`));
    }, o.timeoutMs ?? 5000);
    const done = (err?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve({ raw: Buffer.concat(parts), statuses });
    };
    const scanner = new IcapMessageScanner('response', {
      onMessage: (h) => {
        statuses.push(h.status);
        if (h.status === 100 && req.preview?.rest) socket.write(req.preview.rest);
        else done();
      },
    });
    socket.on('connect', () => socket.write(req.preview?.first ?? req.full));
    socket.on('data', (d: Buffer) => {
      parts.push(d);
      try {
        scanner.feed(d);
      } catch (err) {
        done(err as Error);
      }
    });
    socket.on('error', (err) => done(err));
    socket.on('close', () => done(new Error('probe: connection closed before a complete response')));
  });
}

// ---------------------------------------------------------------------------------------------
// CLI

export function formatResult(r: LoadResult): string {
  const mb = (n: number): string => `${(n / 1e6).toFixed(2)} MB`;
  const preview = r.preview === null ? '' : ` preview=${r.preview}`;
  const statuses = Object.entries(r.statuses)
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  return [
    `${r.scenario}${preview} → ${r.target.host}:${r.target.port}/${r.target.service}  c=${r.connections}  ` +
      `${r.durationS.toFixed(2)} s measured (+${r.warmupS} s warm-up)`,
    `  requests ${r.requests}  ok ${r.ok}  rate ${r.rps.toFixed(1)} req/s`,
    `  latency ms  p50 ${r.latencyMs.p50}  p90 ${r.latencyMs.p90}  p99 ${r.latencyMs.p99}  max ${r.latencyMs.max}`,
    `  generator queueing ms (not in latency)  p50 ${r.generatorQueueMs.p50}  p99 ${r.generatorQueueMs.p99}  max ${r.generatorQueueMs.max}`,
    ...(r.cycleMs === undefined ? [] : [`  cycle ms (send delay + latency)  p50 ${r.cycleMs.p50}  p99 ${r.cycleMs.p99}  mean ${r.cycleMs.mean}`]),
    `  errors ${r.errors.total} (status ${r.errors.status}, socket ${r.errors.socket}, timeout ${r.errors.timeout}, ` +
      `framing ${r.errors.framing})  statuses ${statuses || '-'}  reconnects ${r.reconnects}`,
    `  bytes sent ${mb(r.bytes.sent)}  received ${mb(r.bytes.received)}`,
    `  loadgen cpu ${r.cpu.percentOfOneCore}% of one core (user ${r.cpu.userMs} ms, sys ${r.cpu.systemMs} ms, ` +
      `${r.cpu.usPerRequest} µs/request, event-loop utilization ${r.cpu.eventLoopUtilization})`,
    ...(r.firstError !== null ? [`  first error: ${r.firstError}`] : []),
  ].join('\n');
}

/** Raw ICAP bytes made readable: CR/LF shown, long bodies cut. */
export function showRaw(raw: Buffer, max = 3000): string {
  const text = raw.subarray(0, max).toString('latin1').replace(/\r/g, '\\r').replace(/\n/g, '\\n\n');
  return raw.length > max ? `${text}\n… (${raw.length - max} more bytes)` : text;
}

const USAGE = `usage: node --import tsx bench/loadgen.ts [options]
  --host H            target host (default 127.0.0.1)
  --port P            target port (default 1344)
  --service S         ICAP service path (default echo)
  --scenario NAME     ${SCENARIO_NAMES.join(' | ')} (default options)
  --connections C     concurrent persistent connections (default 1)
  --duration S        measurement window in seconds (default 5)
  --count N           stop after N measured requests instead
  --warmup S          warm-up seconds, not recorded (default 1)
  --preview N         send Preview: N (body scenarios), wait for 100 Continue
  --timeout-ms MS     per-request timeout (default 30000)
  --max-seconds S     hard cap for the whole run (default 600)
  --json              print the result as JSON
  --trace-out FILE    write each answer's send time and latency to FILE (bench/tail-vs-gc.ts)
  --probe             send one request and print the raw response`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      service: { type: 'string' },
      scenario: { type: 'string' },
      connections: { type: 'string', short: 'c' },
      duration: { type: 'string', short: 'd' },
      count: { type: 'string', short: 'n' },
      warmup: { type: 'string' },
      preview: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'max-seconds': { type: 'string' },
      json: { type: 'boolean' },
      'trace-out': { type: 'string' },
      probe: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(USAGE);
    return 0;
  }
  const num = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
  const scenario = values.scenario ?? DEFAULT_LOAD_OPTIONS.scenario;
  if (!isScenarioName(scenario)) {
    console.error(`unknown scenario ${scenario}\n${USAGE}`);
    return 2;
  }
  const base = {
    host: values.host ?? DEFAULT_LOAD_OPTIONS.host,
    port: num(values.port, DEFAULT_LOAD_OPTIONS.port),
    service: values.service ?? DEFAULT_LOAD_OPTIONS.service,
    scenario,
    preview: values.preview === undefined ? undefined : Number(values.preview),
  };
  if (values.probe === true) {
    const p = await probeOnce({ ...base, timeoutMs: num(values['timeout-ms'], 5000) });
    if (values.json === true) console.log(JSON.stringify({ statuses: p.statuses, raw: p.raw.toString('latin1') }));
    else console.log(`statuses: ${p.statuses.join(', ')}\n${showRaw(p.raw)}`);
    return 0;
  }
  const result = await runLoad({
    ...base,
    connections: num(values.connections, DEFAULT_LOAD_OPTIONS.connections),
    durationS: num(values.duration, DEFAULT_LOAD_OPTIONS.durationS),
    count: values.count === undefined ? undefined : Number(values.count),
    warmupS: num(values.warmup, DEFAULT_LOAD_OPTIONS.warmupS),
    requestTimeoutMs: num(values['timeout-ms'], DEFAULT_LOAD_OPTIONS.requestTimeoutMs),
    maxSeconds: num(values['max-seconds'], DEFAULT_LOAD_OPTIONS.maxSeconds),
    traceOut: values['trace-out'],
  });
  console.log(values.json === true ? JSON.stringify(result, null, 2) : formatResult(result));
  return result.ok > 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 2;
    },
  );
}
