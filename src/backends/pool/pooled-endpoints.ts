/**
 * A backend's `endpoints` list and pool keys (PoolSettings) made into a live EndpointPool
 * (DESIGN.md "Backends and pools"). The module is generic. The adapter says where host and port
 * are in its endpoint text, what to build for each endpoint (a socket address, an HTTP client)
 * and how to check it.
 *
 *   endpoints: ["10.0.0.5:3310", "/run/clamd.ctl", "clamd.example:3310"]       dns.enabled: true
 *      │ IP literal, socket path, or DNS off            │ a DNS name
 *      ▼                                                ▼ DnsEndpointSource, re-resolved by TTL
 *   one pool endpoint, id = the text as written     one pool endpoint per A/AAAA record,
 *                                                   id = "clamd.example:3310 (10.0.0.7)", pinned
 *
 * A name that has not resolved yet (DNS down at start) stays one unpinned endpoint that connects
 * by name, so the pool is never empty because of DNS. When DNS answers, its records replace it.
 *
 * Every pool endpoint has a PoolTarget and the adapter's resource for it (from open()). When an
 * endpoint leaves the pool (the DNS records changed), its resource is disposed once no lease
 * holds it. A job pinned to an address keeps that address until the job ends.
 */
import { isIP } from 'node:net';
import type { EndpointStatus } from '../backend.js';
import { DnsEndpointSource, type ResolvedEndpoint } from './dns-endpoints.js';
import { EndpointPool, type AcquireOptions, type EndpointHealthChange, type Lease, type LeaseOutcome, type PoolOptions } from './endpoint-pool.js';
import type { PoolSettings } from './pool-settings.js';

export interface HostPort {
  /** A DNS name or an IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

/** Where one pool endpoint is, for the adapter. */
export interface PoolTarget {
  /** The pool endpoint id: the configured text, or `<configured> (<address>)` for a DNS record. */
  readonly id: string;
  /** The `endpoints` entry it comes from, as written. */
  readonly configured: string;
  /** The host as configured: the DNS name or IP literal, for a Host header and the TLS server name. '' for a socket path. */
  readonly hostName: string;
  /** What to connect to: the pinned record when `pinned`, else hostName. '' for a socket path. */
  readonly address: string;
  /** 0 for a socket path. */
  readonly port: number;
  /** `address` is one of hostName's DNS records. */
  readonly pinned: boolean;
}

export interface PooledEndpoint<R> {
  readonly target: PoolTarget;
  readonly resource: R;
}

/** A lease that also carries the endpoint's target and resource. */
export interface PooledLease<R> extends Lease, PooledEndpoint<R> {}

/** Pool behaviour the adapter chooses, beyond the config keys. */
export type PoolTuning = Pick<PoolOptions, 'queueTimeoutMs' | 'fallbackToUnhealthy' | 'checksToDown' | 'checksToUp'>;

export interface PooledEndpointsOptions<R> {
  readonly endpoints: readonly string[];
  readonly settings: PoolSettings;
  /** Host and port in an endpoint text, or null when there is none to resolve (a UNIX socket path). */
  readonly locate: (text: string) => HostPort | null;
  /** Builds the per-endpoint resource: a parsed address, an HTTP client pinned to the address… */
  readonly open: (target: PoolTarget) => R;
  /** Frees a resource whose endpoint left the pool, once no lease holds it, and every one at close(). */
  readonly dispose?: (resource: R) => void | Promise<void>;
  /** The active health check. */
  readonly check?: (endpoint: PooledEndpoint<R>, signal: AbortSignal) => Promise<boolean>;
  readonly tuning?: PoolTuning;
  /** Told once per change of an endpoint's health (EndpointPool's onHealthChange). */
  readonly onHealthChange?: (change: EndpointHealthChange) => void;
}

interface Entry<R> {
  readonly target: PoolTarget;
  readonly resource: R;
  leases: number;
  /** Still in the pool; when false, disposed as the last lease goes. */
  present: boolean;
}

export class PooledEndpoints<R> {
  readonly #options: PooledEndpointsOptions<R>;
  readonly #pool: EndpointPool;
  readonly #entries = new Map<string, Entry<R>>();
  /** The current targets of each configured entry, in configured order. */
  readonly #groups: PoolTarget[][];
  readonly #sources: DnsEndpointSource[] = [];
  /** Set once the first resolution is done: nothing is opened for a name about to be replaced by its records. */
  #started = false;
  #closed = false;

  /** Builds the pool and resolves the DNS names once (bounded by the resolver's timeouts). */
  static async create<R>(options: PooledEndpointsOptions<R>): Promise<PooledEndpoints<R>> {
    const pooled = new PooledEndpoints(options);
    await Promise.all(pooled.#sources.map((s) => s.refresh()));
    pooled.#started = true;
    pooled.#apply();
    return pooled;
  }

  private constructor(options: PooledEndpointsOptions<R>) {
    this.#options = options;
    const s = options.settings;
    const check = options.check;
    this.#pool = new EndpointPool([], {
      strategy: s.balance,
      maxConcurrency: s.max_concurrency,
      maxQueue: s.max_queue,
      ejectAfter: s.eject_after,
      cooldownMs: s.cooldown_ms,
      checkIntervalMs: s.health_interval_ms,
      checkTimeoutMs: s.health_timeout_ms,
      ...options.tuning,
      ...(options.onHealthChange && { onHealthChange: options.onHealthChange }),
      ...(check && {
        check: (id: string, signal: AbortSignal) => {
          const entry = this.#entries.get(id);
          return entry ? check(entry, signal) : Promise.resolve(false);
        },
      }),
    });
    this.#groups = options.endpoints.map((text, i) => {
      const at = options.locate(text);
      const byName: PoolTarget = { id: text, configured: text, hostName: at?.host ?? '', address: at?.host ?? '', port: at?.port ?? 0, pinned: false };
      if (s.dns.enabled && at !== null && isIP(at.host) === 0) {
        const source = new DnsEndpointSource(
          { name: at.host, port: at.port, ...(s.dns.server !== '' && { server: s.dns.server }), minTtlMs: s.dns.min_ttl_ms, maxTtlMs: s.dns.max_ttl_ms },
          (records) => this.#onRecords(i, text, at.host, records),
        );
        this.#sources.push(source);
      }
      return [byName];
    });
  }

  /** Current endpoints in pool order (configured order, a name's records in DNS order). */
  get endpoints(): readonly PooledEndpoint<R>[] {
    // After close() there are none.
    return this.#pool.endpoints.flatMap((id) => this.#entries.get(id) ?? []);
  }

  get(id: string): PooledEndpoint<R> | undefined {
    return this.#entries.get(id);
  }

  get ready(): boolean {
    return this.#pool.ready;
  }

  isHealthy(id: string): boolean {
    return this.#pool.isHealthy(id);
  }

  status(): EndpointStatus[] {
    return this.#pool.status();
  }

  /** A lease on an endpoint not in `exclude`; rejects like EndpointPool.acquire. */
  async acquire(options: AcquireOptions = {}): Promise<PooledLease<R>> {
    const lease = await this.#pool.acquire(options);
    const entry = this.#entries.get(lease.endpoint)!;
    entry.leases++;
    let released = false;
    return {
      endpoint: lease.endpoint,
      target: entry.target,
      resource: entry.resource,
      release: (outcome: LeaseOutcome, detail?: string) => {
        if (released) return;
        released = true;
        lease.release(outcome, detail);
        entry.leases--;
        if (!entry.present && entry.leases === 0) this.#dispose(entry);
      },
    };
  }

  checkNow(): Promise<void> {
    return this.#pool.checkNow();
  }

  checkOne(id: string): Promise<void> {
    return this.#pool.checkOne(id);
  }

  /** Stops checks and DNS, fails waiting scans, and disposes every resource. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const source of this.#sources) source.close();
    this.#pool.close();
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.allSettled(entries.map(async (e) => this.#options.dispose?.(e.resource)));
  }

  #onRecords(group: number, configured: string, hostName: string, records: readonly ResolvedEndpoint[]): void {
    if (this.#closed) return;
    this.#groups[group] = records.map((r) => ({ id: `${configured} (${r.address})`, configured, hostName, address: r.address, port: r.port, pinned: true }));
    if (this.#started) this.#apply();
  }

  /** Makes the pool and the entries match the groups: opens new endpoints, retires gone ones. */
  #apply(): void {
    const targets = this.#groups.flat();
    const ids = new Set(targets.map((t) => t.id));
    for (const target of targets) {
      const entry = this.#entries.get(target.id);
      if (entry !== undefined) entry.present = true;
      else this.#entries.set(target.id, { target, resource: this.#options.open(target), leases: 0, present: true });
    }
    for (const entry of [...this.#entries.values()]) {
      if (ids.has(entry.target.id)) continue;
      entry.present = false;
      if (entry.leases === 0) this.#dispose(entry);
    }
    const weights = this.#options.settings.weights;
    this.#pool.setEndpoints(targets.map((t) => ({ id: t.id, weight: weights[t.configured] ?? 1 })));
  }

  #dispose(entry: Entry<R>): void {
    if (this.#entries.get(entry.target.id) === entry) this.#entries.delete(entry.target.id);
    void Promise.resolve()
      .then(() => this.#options.dispose?.(entry.resource))
      .catch(() => {});
  }
}
