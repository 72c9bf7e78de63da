/**
 * The clamd endpoints of one backend: health, per-endpoint concurrency and a bounded wait queue.
 * The choice of endpoint is the one function `chooseEndpoint`, so the generic endpoint pool of
 * DESIGN.md ("Backends and pools") can replace it without touching the scan code.
 */
import type { EndpointStatus } from '../backend.js';
import type { ClamdAddress } from './endpoint.js';

export class ClamdEndpoint {
  readonly address: ClamdAddress;
  /** From the last PING, or the last scan: a reply proves it alive, a lost connection marks it down. */
  healthy = false;
  /** Why it is down, for messages. */
  lastError: string | null = 'not checked yet';
  /** Last VERSION reply text; null when not known. */
  version: string | null = null;
  /** VERSION was answered with COMMAND UNAVAILABLE / UNKNOWN COMMAND (disabled, or not implemented). */
  versionRefused = false;
  inFlight = 0;
  readonly waiters: Waiter[] = [];

  constructor(address: ClamdAddress) {
    this.address = address;
  }

  get label(): string {
    return this.address.label;
  }

  markUp(): void {
    this.healthy = true;
    this.lastError = null;
  }

  markDown(reason: string): void {
    this.healthy = false;
    this.lastError = reason;
  }

  status(): EndpointStatus {
    return { endpoint: this.label, healthy: this.healthy, inFlight: this.inFlight, queued: this.waiters.length };
  }
}

interface Waiter {
  grant(lease: Lease): void;
  cancel(result: Acquired): void;
}

export interface Lease {
  readonly endpoint: ClamdEndpoint;
  /** Gives the slot back (to the next waiter, if any). Idempotent. */
  release(): void;
}

export interface PoolLimits {
  /** Scans running at once per endpoint. */
  readonly maxConcurrency: number;
  /** Scans waiting per endpoint beyond maxConcurrency; further ones are 'overloaded'. */
  readonly maxQueue: number;
}

export type Choice = { readonly endpoint: ClamdEndpoint; readonly wait: boolean } | null;

/**
 * Round-robin from `start` over the healthy endpoints not in `exclude`; when none is healthy, over
 * all of them (a scan then gets a real answer — unreachable or overloaded — and a revived clamd is
 * used before its next PING). The first with a free slot wins; if every one is busy, the one
 * with the shortest queue that still has room, to wait on.
 */
export function chooseEndpoint(endpoints: readonly ClamdEndpoint[], start: number, exclude: ReadonlySet<ClamdEndpoint>, limits: PoolLimits): Choice {
  const open = endpoints.filter((e) => !exclude.has(e));
  const healthy = open.filter((e) => e.healthy);
  const candidates = healthy.length > 0 ? healthy : open;
  const n = candidates.length;
  let waitOn: ClamdEndpoint | null = null;
  for (let i = 0; i < n; i++) {
    const endpoint = candidates[(start + i) % n]!;
    if (endpoint.inFlight < limits.maxConcurrency) return { endpoint, wait: false };
    if (endpoint.waiters.length < limits.maxQueue && (waitOn === null || endpoint.waiters.length < waitOn.waiters.length)) waitOn = endpoint;
  }
  return waitOn === null ? null : { endpoint: waitOn, wait: true };
}

export type Acquired =
  | { readonly ok: true; readonly lease: Lease }
  | { readonly ok: false; readonly reason: 'no-endpoint' | 'overloaded' | 'aborted'; readonly message: string };

export class EndpointPool {
  readonly endpoints: readonly ClamdEndpoint[];
  readonly #limits: PoolLimits;
  /** How long a scan may wait for a slot. */
  readonly #queueTimeoutMs: number;
  #cursor = 0;
  #closed = false;

  constructor(addresses: readonly ClamdAddress[], limits: PoolLimits, queueTimeoutMs: number) {
    this.endpoints = addresses.map((a) => new ClamdEndpoint(a));
    this.#limits = limits;
    this.#queueTimeoutMs = queueTimeoutMs;
  }

  /** A slot on some endpoint not in `exclude`. Never rejects. */
  acquire(exclude: ReadonlySet<ClamdEndpoint>, signal: AbortSignal): Promise<Acquired> {
    if (this.#closed) return Promise.resolve({ ok: false, reason: 'aborted', message: 'backend closed' });
    if (signal.aborted) return Promise.resolve({ ok: false, reason: 'aborted', message: 'scan aborted' });
    const choice = chooseEndpoint(this.endpoints, this.#cursor++ % Math.max(1, this.endpoints.length), exclude, this.#limits);
    if (choice === null) {
      return Promise.resolve(
        this.endpoints.every((e) => exclude.has(e))
          ? { ok: false, reason: 'no-endpoint', message: 'no other clamd endpoint to try' }
          : { ok: false, reason: 'overloaded', message: `every clamd endpoint has ${this.#limits.maxConcurrency} scans running and a full queue` },
      );
    }
    const { endpoint } = choice;
    if (!choice.wait) return Promise.resolve({ ok: true, lease: this.#lease(endpoint) });
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: (lease) => {
          cleanup();
          resolve({ ok: true, lease });
        },
        cancel: (result) => leave(result),
      };
      const leave = (result: Acquired): void => {
        const at = endpoint.waiters.indexOf(waiter);
        if (at !== -1) endpoint.waiters.splice(at, 1);
        cleanup();
        resolve(result);
      };
      const onAbort = (): void => leave({ ok: false, reason: 'aborted', message: 'scan aborted while waiting for a clamd slot' });
      const timer = setTimeout(
        () => leave({ ok: false, reason: 'overloaded', message: `no free slot on ${endpoint.label} within ${this.#queueTimeoutMs} ms` }),
        this.#queueTimeoutMs,
      );
      const cleanup = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      endpoint.waiters.push(waiter);
    });
  }

  /** Refuses new scans and wakes the waiting ones with an error. */
  close(): void {
    this.#closed = true;
    for (const endpoint of this.endpoints) {
      for (const waiter of [...endpoint.waiters]) waiter.cancel({ ok: false, reason: 'aborted', message: 'backend closed' });
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  #lease(endpoint: ClamdEndpoint): Lease {
    endpoint.inFlight++;
    let released = false;
    return {
      endpoint,
      release: () => {
        if (released) return;
        released = true;
        endpoint.inFlight--;
        const next = endpoint.waiters.shift();
        if (next !== undefined) next.grant(this.#lease(endpoint));
      },
    };
  }
}
