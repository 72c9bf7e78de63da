/**
 * A pool of endpoints for one backend (DESIGN.md "Backends and pools"): balancing, a
 * concurrency limit per endpoint with a bounded wait queue, passive ejection after failures with
 * a cool-down (a circuit breaker), active health checks, and a way to exclude the endpoint that
 * just failed so a retry goes elsewhere. It knows nothing about the protocol on top: adapters
 * lease an endpoint, use it, and report how it went.
 *
 *   acquire() ──► pick a healthy endpoint with a free slot (strategy) ──► Lease
 *        │            none free: wait in the queue (bounded in length and, optionally, in time)
 *        │            none healthy: 'unreachable', or any endpoint with fallbackToUnhealthy
 *        ▼
 *   lease.release('ok' | 'failure' | 'down' | 'neutral')
 *        failure × ejectAfter in a row, or one 'down' ──► ejected until cooldown passes (and,
 *        with active checks, until a check succeeds)
 *
 * Every change of an endpoint's health (up → down, down → up) is reported once, with why, to
 * onHealthChange: the operator's "clamd at 10.0.0.5:3310 is down" line (HAProxy's "Server is
 * DOWN"), not one warning per failed scan.
 */
import type { EndpointStatus } from '../backend.js';

export type BalanceStrategy = 'round-robin' | 'least-outstanding' | 'weighted';

export interface EndpointSpec {
  /** Stable identity: `host:port`, a socket path, a URL. */
  readonly id: string;
  readonly weight?: number;
}

export interface PoolOptions {
  readonly strategy: BalanceStrategy;
  /** Scans at once per endpoint. */
  readonly maxConcurrency: number;
  /** Scans that may wait for a free slot across the pool; past it acquire() fails 'overloaded'. */
  readonly maxQueue: number;
  /** How long a scan may wait in the queue before it fails 'overloaded'; 0 or absent = no bound. */
  readonly queueTimeoutMs?: number;
  /** Consecutive failures that eject an endpoint. */
  readonly ejectAfter: number;
  /** How long an ejected endpoint stays out before checks may bring it back. */
  readonly cooldownMs: number;
  /**
   * When no endpoint is healthy, use the unhealthy ones rather than fail at once (Envoy's "panic
   * mode"): a stale "down" never stops a scan that might succeed, and the scan gets the real
   * reason (refused, timed out) instead of a generic one.
   */
  readonly fallbackToUnhealthy?: boolean;
  /** Active check; resolves true when the endpoint is usable. */
  readonly check?: (endpoint: string, signal: AbortSignal) => Promise<boolean>;
  /** 0 or absent = no periodic checks (checkNow() / checkOne() still work). */
  readonly checkIntervalMs?: number;
  readonly checkTimeoutMs?: number;
  /**
   * Hysteresis: failed (passed) checks in a row that mark an endpoint down (up). Default 1. The
   * first check of an endpoint decides at once.
   */
  readonly checksToDown?: number;
  readonly checksToUp?: number;
  /** Told once per change of an endpoint's health, with the reason. */
  readonly onHealthChange?: (change: EndpointHealthChange) => void;
}

export interface EndpointHealthChange {
  readonly endpoint: string;
  readonly healthy: boolean;
  /** Why: the failure that ejected it ("cannot connect to …: ECONNREFUSED"), a check's result, a scan answered. */
  readonly reason: string;
}

/** A failure's text is quoted into a log line; a server's error page must not fill it. */
const MAX_REASON_CHARS = 300;

export type PoolErrorKind = 'unreachable' | 'overloaded' | 'aborted';

export class PoolUnavailableError extends Error {
  readonly kind: PoolErrorKind;
  constructor(kind: PoolErrorKind, message: string) {
    super(message);
    this.name = 'PoolUnavailableError';
    this.kind = kind;
  }
}

/**
 * How a lease went, for passive health: 'ok' proves the endpoint alive; 'failure' counts towards
 * ejectAfter; 'down' ejects at once (refused, or clamd's queue-full silence); 'neutral' (the
 * client went away, our own size limit) says nothing about the endpoint.
 */
export type LeaseOutcome = 'ok' | 'failure' | 'down' | 'neutral';

export interface Lease {
  readonly endpoint: string;
  /** `detail`: what went wrong, for the health-change report when this release ejects the endpoint. */
  release(outcome: LeaseOutcome, detail?: string): void;
}

export interface AcquireOptions {
  readonly exclude?: ReadonlySet<string>;
  readonly signal?: AbortSignal;
}

interface EndpointState {
  readonly id: string;
  readonly weight: number;
  inFlight: number;
  failures: number;
  healthy: boolean;
  ejectedUntil: number;
  /** Smooth weighted round-robin (nginx's algorithm): current weight. */
  current: number;
  /** Active checks so far, and the current streak of passed / failed ones (hysteresis). */
  checks: number;
  passedInRow: number;
  failedInRow: number;
}

interface Waiter {
  readonly exclude: ReadonlySet<string>;
  readonly resolve: (lease: Lease) => void;
  readonly reject: (err: Error) => void;
  /** Removes the waiter's abort listener and timer. */
  readonly cleanup: () => void;
}

export class EndpointPool {
  readonly #options: PoolOptions;
  #endpoints: EndpointState[];
  #next = 0;
  #queue: Waiter[] = [];
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Checks running now, per endpoint id: a new request joins the running one. */
  readonly #running = new Map<string, Promise<void>>();
  #round: Promise<void> | null = null;

  constructor(endpoints: readonly EndpointSpec[], options: PoolOptions) {
    this.#options = options;
    this.#endpoints = endpoints.map((e) => EndpointPool.#state(e));
    if (options.check && options.checkIntervalMs) {
      this.#timer = setInterval(() => void this.checkNow(), options.checkIntervalMs);
      this.#timer.unref();
    }
  }

  static #state(e: EndpointSpec): EndpointState {
    return {
      id: e.id,
      weight: Math.max(1, e.weight ?? 1),
      inFlight: 0,
      failures: 0,
      healthy: true,
      ejectedUntil: 0,
      current: 0,
      checks: 0,
      passedInRow: 0,
      failedInRow: 0,
    };
  }

  /** Replaces the endpoint set (DNS re-resolution), keeping the state of endpoints that stay. */
  setEndpoints(endpoints: readonly EndpointSpec[]): void {
    const old = new Map(this.#endpoints.map((e) => [e.id, e]));
    this.#endpoints = endpoints.map((e) => old.get(e.id) ?? EndpointPool.#state(e));
    this.#dispatch();
  }

  get endpoints(): readonly string[] {
    return this.#endpoints.map((e) => e.id);
  }

  /** True when at least one endpoint may take work now or after its cool-down. */
  get ready(): boolean {
    return this.#endpoints.some((e) => this.#usable(e));
  }

  /** Whether `id` is in the pool and usable now. */
  isHealthy(id: string): boolean {
    const e = this.#endpoints.find((s) => s.id === id);
    return e !== undefined && this.#usable(e);
  }

  /** The pool-wide queue is reported on the first endpoint. */
  status(): EndpointStatus[] {
    const queued = this.#queue.length;
    return this.#endpoints.map((e, i) => ({ endpoint: e.id, healthy: this.#usable(e), inFlight: e.inFlight, queued: i === 0 ? queued : 0 }));
  }

  /**
   * A lease on an endpoint not in `exclude`. Waits (bounded) when every usable endpoint is busy.
   * Rejects with PoolUnavailableError: 'unreachable' when no endpoint is usable, 'overloaded'
   * when the queue is full or the wait took longer than queueTimeoutMs, 'aborted' on the signal.
   */
  acquire(options: AcquireOptions = {}): Promise<Lease> {
    const exclude = options.exclude ?? new Set<string>();
    const signal = options.signal;
    if (this.#closed) return Promise.reject(new PoolUnavailableError('unreachable', 'pool closed'));
    if (signal?.aborted) return Promise.reject(new PoolUnavailableError('aborted', 'aborted'));
    const candidates = this.#candidates(exclude);
    if (candidates.length === 0) {
      return Promise.reject(new PoolUnavailableError('unreachable', `no healthy endpoint (${this.#endpoints.map((e) => e.id).join(', ') || 'none'})`));
    }
    const picked = this.#pick(candidates);
    if (picked !== undefined) return Promise.resolve(this.#lease(picked));
    if (this.#queue.length >= this.#options.maxQueue) {
      return Promise.reject(new PoolUnavailableError('overloaded', `all endpoints busy and ${this.#queue.length} scans waiting`));
    }
    return new Promise((resolve, reject) => {
      const leave = (err: PoolUnavailableError): void => {
        this.#queue = this.#queue.filter((w) => w !== waiter);
        cleanup();
        reject(err);
      };
      const onAbort = (): void => leave(new PoolUnavailableError('aborted', 'aborted while waiting for an endpoint'));
      const waitMs = this.#options.queueTimeoutMs ?? 0;
      const timer = waitMs > 0 ? setTimeout(() => leave(new PoolUnavailableError('overloaded', `no free slot on any endpoint within ${waitMs} ms`)), waitMs) : null;
      const cleanup = (): void => {
        if (timer !== null) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = { exclude, resolve, reject, cleanup };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  /** Runs the active checks of every endpoint once (joining any running); an ejected endpoint returns only after its cool-down. */
  checkNow(): Promise<void> {
    if (!this.#options.check || this.#closed) return Promise.resolve();
    this.#round ??= Promise.all(this.#endpoints.map((e) => this.checkOne(e.id))).then(
      () => {
        this.#round = null;
      },
      () => {
        this.#round = null;
      },
    );
    return this.#round;
  }

  /** Checks one endpoint now (after a lost connection, say); joins a check of it already running. */
  checkOne(id: string): Promise<void> {
    const check = this.#options.check;
    const e = this.#endpoints.find((s) => s.id === id);
    if (!check || e === undefined || this.#closed) return Promise.resolve();
    let running = this.#running.get(id);
    if (running === undefined) {
      running = this.#runCheck(e, check).finally(() => this.#running.delete(id));
      this.#running.set(id, running);
    }
    return running;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    const queue = this.#queue;
    this.#queue = [];
    for (const w of queue) {
      w.cleanup();
      w.reject(new PoolUnavailableError('unreachable', 'pool closed'));
    }
  }

  async #runCheck(e: EndpointState, check: NonNullable<PoolOptions['check']>): Promise<void> {
    const controller = new AbortController();
    const timeoutMs = this.#options.checkTimeoutMs ?? 2000;
    let timer: NodeJS.Timeout | undefined;
    // A check that ignores its signal is still bounded: the race decides, the signal tells it to stop.
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        controller.abort();
        resolve(false);
      }, timeoutMs);
    });
    let ok: boolean;
    try {
      ok = await Promise.race([check(e.id, controller.signal).catch(() => false), timedOut]);
    } finally {
      clearTimeout(timer);
    }
    if (this.#closed) return;
    const first = e.checks === 0;
    e.checks++;
    if (ok) {
      e.passedInRow++;
      e.failedInRow = 0;
      if ((first || e.passedInRow >= (this.#options.checksToUp ?? 1)) && Date.now() >= e.ejectedUntil) {
        this.#setHealth(e, true, e.passedInRow > 1 ? `${e.passedInRow} health checks passed in a row` : 'health check passed');
        e.failures = 0;
      }
    } else {
      e.failedInRow++;
      e.passedInRow = 0;
      if (first || e.failedInRow >= (this.#options.checksToDown ?? 1)) {
        const what = controller.signal.aborted ? `health check timed out after ${timeoutMs} ms` : 'health check failed';
        this.#setHealth(e, false, e.failedInRow > 1 ? `${what} (${e.failedInRow} in a row)` : what);
      }
    }
    this.#dispatch();
  }

  #usable(e: EndpointState): boolean {
    if (e.healthy) return true;
    // Without active checks, a cool-down alone brings an ejected endpoint back on probation.
    return !this.#options.check && Date.now() >= e.ejectedUntil;
  }

  /** Usable endpoints not excluded; with fallbackToUnhealthy and none usable, every one not excluded. */
  #candidates(exclude: ReadonlySet<string>): EndpointState[] {
    const open = this.#endpoints.filter((e) => !exclude.has(e.id));
    const usable = open.filter((e) => this.#usable(e));
    return usable.length === 0 && this.#options.fallbackToUnhealthy ? open : usable;
  }

  #pick(candidates: EndpointState[]): EndpointState | undefined {
    const free = candidates.filter((e) => e.inFlight < this.#options.maxConcurrency);
    if (free.length === 0) return undefined;
    switch (this.#options.strategy) {
      case 'least-outstanding': {
        let best = free[0]!;
        for (const e of free) if (e.inFlight < best.inFlight) best = e;
        return best;
      }
      case 'weighted': {
        // Smooth weighted round-robin: every pick raises each by its weight, the highest wins
        // and pays back the total. Spreads picks evenly instead of in bursts.
        const total = free.reduce((sum, e) => sum + e.weight, 0);
        let best = free[0]!;
        for (const e of free) {
          e.current += e.weight;
          if (e.current > best.current) best = e;
        }
        best.current -= total;
        return best;
      }
      case 'round-robin': {
        for (let i = 0; i < this.#endpoints.length; i++) {
          const e = this.#endpoints[(this.#next + i) % this.#endpoints.length]!;
          if (free.includes(e)) {
            this.#next = (this.#endpoints.indexOf(e) + 1) % this.#endpoints.length;
            return e;
          }
        }
        return free[0];
      }
    }
  }

  #lease(e: EndpointState): Lease {
    e.inFlight++;
    let released = false;
    return {
      endpoint: e.id,
      release: (outcome, detail) => {
        if (released) return;
        released = true;
        e.inFlight--;
        if (outcome === 'ok') {
          // An answer proves it alive, whatever the last check or cool-down said.
          e.failures = 0;
          this.#setHealth(e, true, 'answered a scan');
          e.ejectedUntil = 0;
        } else if (outcome === 'failure' || outcome === 'down') {
          e.failures++;
          if (outcome === 'down' || e.failures >= this.#options.ejectAfter) {
            const why = detail ?? (outcome === 'down' ? 'refused or not answering' : 'scan failed');
            this.#setHealth(e, false, e.failures > 1 ? `${e.failures} failures in a row, the last: ${why}` : why);
            e.ejectedUntil = Date.now() + this.#options.cooldownMs;
          }
        }
        this.#dispatch();
      },
    };
  }

  /** Records the endpoint's health; a change (and only a change) is reported. */
  #setHealth(e: EndpointState, healthy: boolean, reason: string): void {
    if (e.healthy === healthy) return;
    e.healthy = healthy;
    const onChange = this.#options.onHealthChange;
    if (onChange === undefined || this.#closed) return;
    // Adapters' messages often start with the endpoint ("http://core-1:8008: upload failed…"),
    // which the report carries already.
    const own = reason.startsWith(`${e.id}: `) ? reason.slice(e.id.length + 2) : reason;
    const short = own.length > MAX_REASON_CHARS ? `${own.slice(0, MAX_REASON_CHARS)}…` : own;
    try {
      onChange({ endpoint: e.id, healthy, reason: short });
    } catch {
      // A reporting failure (a closed log stream) must not change what the pool does.
    }
  }

  /** Hands freed slots to waiters in order. */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      const waiter = this.#queue[0]!;
      const candidates = this.#candidates(waiter.exclude);
      if (candidates.length === 0) {
        this.#queue.shift();
        waiter.cleanup();
        waiter.reject(new PoolUnavailableError('unreachable', 'no healthy endpoint left'));
        continue;
      }
      const picked = this.#pick(candidates);
      if (picked === undefined) return;
      this.#queue.shift();
      waiter.cleanup();
      waiter.resolve(this.#lease(picked));
    }
  }
}
