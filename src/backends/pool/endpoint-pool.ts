/**
 * A pool of endpoints for one backend (DESIGN.md "Backends and pools"): balancing, a
 * concurrency limit per endpoint with a bounded wait queue, passive ejection after failures with
 * a cool-down (a circuit breaker), active health checks, and a way to exclude the endpoint that
 * just failed so a retry goes elsewhere. It knows nothing about the protocol on top: adapters
 * lease an endpoint, use it, and report how it went.
 *
 *   acquire() ──► pick a healthy endpoint with a free slot (strategy) ──► Lease
 *        │            none free: wait in the queue (bounded)   none healthy: 'unreachable'
 *        ▼
 *   lease.release('ok' | 'failure' | 'neutral')
 *        failure × ejectAfter in a row ──► ejected until cooldown passes and a check succeeds
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
  /** Consecutive failures that eject an endpoint. */
  readonly ejectAfter: number;
  /** How long an ejected endpoint stays out before checks may bring it back. */
  readonly cooldownMs: number;
  /** Active check; resolves true when the endpoint is usable. */
  readonly check?: (endpoint: string, signal: AbortSignal) => Promise<boolean>;
  readonly checkIntervalMs?: number;
  readonly checkTimeoutMs?: number;
}

export type PoolErrorKind = 'unreachable' | 'overloaded' | 'aborted';

export class PoolUnavailableError extends Error {
  readonly kind: PoolErrorKind;
  constructor(kind: PoolErrorKind, message: string) {
    super(message);
    this.name = 'PoolUnavailableError';
    this.kind = kind;
  }
}

export interface Lease {
  readonly endpoint: string;
  /** 'failure' counts towards ejection; 'neutral' (e.g. the client went away) does not count. */
  release(outcome: 'ok' | 'failure' | 'neutral'): void;
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
}

interface Waiter {
  readonly exclude: ReadonlySet<string>;
  readonly resolve: (lease: Lease) => void;
  readonly reject: (err: Error) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

export class EndpointPool {
  readonly #options: PoolOptions;
  #endpoints: EndpointState[];
  #next = 0;
  #queue: Waiter[] = [];
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(endpoints: readonly EndpointSpec[], options: PoolOptions) {
    this.#options = options;
    this.#endpoints = endpoints.map((e) => EndpointPool.#state(e));
    if (options.check && options.checkIntervalMs) {
      this.#timer = setInterval(() => void this.checkNow(), options.checkIntervalMs);
      this.#timer.unref();
    }
  }

  static #state(e: EndpointSpec): EndpointState {
    return { id: e.id, weight: Math.max(1, e.weight ?? 1), inFlight: 0, failures: 0, healthy: true, ejectedUntil: 0, current: 0 };
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

  status(): EndpointStatus[] {
    const queued = this.#queue.length;
    return this.#endpoints.map((e, i) => ({ endpoint: e.id, healthy: this.#usable(e), inFlight: e.inFlight, queued: i === 0 ? queued : 0 }));
  }

  /**
   * A lease on an endpoint not in `exclude`. Waits (bounded) when every usable endpoint is busy.
   * Rejects with PoolUnavailableError: 'unreachable' when no endpoint is usable, 'overloaded'
   * when the queue is full, 'aborted' on the signal.
   */
  acquire(options: { exclude?: ReadonlySet<string>; signal?: AbortSignal } = {}): Promise<Lease> {
    const exclude = options.exclude ?? new Set<string>();
    if (this.#closed) return Promise.reject(new PoolUnavailableError('unreachable', 'pool closed'));
    if (options.signal?.aborted) return Promise.reject(new PoolUnavailableError('aborted', 'aborted'));
    const candidates = this.#endpoints.filter((e) => !exclude.has(e.id) && this.#usable(e));
    if (candidates.length === 0) {
      return Promise.reject(new PoolUnavailableError('unreachable', `no healthy endpoint (${this.#endpoints.map((e) => e.id).join(', ') || 'none'})`));
    }
    const picked = this.#pick(candidates);
    if (picked !== undefined) return Promise.resolve(this.#lease(picked));
    if (this.#queue.length >= this.#options.maxQueue) {
      return Promise.reject(new PoolUnavailableError('overloaded', `all endpoints busy and ${this.#queue.length} scans waiting`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        exclude,
        resolve,
        reject,
        signal: options.signal,
        onAbort: () => {
          this.#queue = this.#queue.filter((w) => w !== waiter);
          reject(new PoolUnavailableError('aborted', 'aborted while waiting for an endpoint'));
        },
      };
      options.signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  /** Runs the active checks once; an ejected endpoint returns only after its cool-down. */
  async checkNow(): Promise<void> {
    const check = this.#options.check;
    if (!check) return;
    await Promise.all(
      this.#endpoints.map(async (e) => {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), this.#options.checkTimeoutMs ?? 2000);
        let ok = false;
        try {
          ok = await check(e.id, controller.signal);
        } catch {
          ok = false;
        } finally {
          clearTimeout(timer);
        }
        if (ok && Date.now() >= e.ejectedUntil) {
          e.healthy = true;
          e.failures = 0;
        } else if (!ok) {
          e.healthy = false;
        }
      }),
    );
    this.#dispatch();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const w of this.#queue) w.reject(new PoolUnavailableError('unreachable', 'pool closed'));
    this.#queue = [];
  }

  #usable(e: EndpointState): boolean {
    if (e.healthy) return true;
    // Without active checks, a cool-down alone brings an ejected endpoint back on probation.
    return !this.#options.check && Date.now() >= e.ejectedUntil;
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
      release: (outcome) => {
        if (released) return;
        released = true;
        e.inFlight--;
        if (outcome === 'ok') {
          e.failures = 0;
          e.healthy = true;
        } else if (outcome === 'failure') {
          e.failures++;
          if (e.failures >= this.#options.ejectAfter) {
            e.healthy = false;
            e.ejectedUntil = Date.now() + this.#options.cooldownMs;
          }
        }
        this.#dispatch();
      },
    };
  }

  /** Hands freed slots to waiters in order. */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      const waiter = this.#queue[0]!;
      const candidates = this.#endpoints.filter((e) => !waiter.exclude.has(e.id) && this.#usable(e));
      if (candidates.length === 0) {
        this.#queue.shift();
        waiter.signal?.removeEventListener('abort', waiter.onAbort);
        waiter.reject(new PoolUnavailableError('unreachable', 'no healthy endpoint left'));
        continue;
      }
      const picked = this.#pick(candidates);
      if (picked === undefined) return;
      this.#queue.shift();
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(this.#lease(picked));
    }
  }
}
