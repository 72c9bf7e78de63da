/**
 * Endpoints from DNS (DESIGN.md "Backends and pools"): every A/AAAA record of a name becomes an
 * endpoint, re-resolved when the shortest TTL runs out. Adapters pin a job to the address that
 * accepted it and keep the DNS name for the Host header and the TLS server name.
 */
import { Resolver } from 'node:dns/promises';
import { isIPv6 } from 'node:net';
import type { EndpointSpec } from './endpoint-pool.js';

export interface DnsSourceOptions {
  readonly name: string;
  readonly port: number;
  /** `host:port` of the DNS server to ask; the system resolver when absent. */
  readonly server?: string;
  /** Bounds on the re-resolution interval, whatever the TTL says. */
  readonly minTtlMs?: number;
  readonly maxTtlMs?: number;
}

export interface ResolvedEndpoint extends EndpointSpec {
  readonly address: string;
  readonly port: number;
}

export function endpointId(address: string, port: number): string {
  return isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

export class DnsEndpointSource {
  readonly #options: DnsSourceOptions;
  readonly #resolver = new Resolver({ timeout: 2000, tries: 2 });
  readonly #onChange: (endpoints: ResolvedEndpoint[]) => void;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #current: ResolvedEndpoint[] = [];

  constructor(options: DnsSourceOptions, onChange: (endpoints: ResolvedEndpoint[]) => void) {
    this.#options = options;
    this.#onChange = onChange;
    if (options.server) this.#resolver.setServers([options.server]);
  }

  get endpoints(): readonly ResolvedEndpoint[] {
    return this.#current;
  }

  /** Resolves now and schedules the next resolution by TTL. Keeps the old set if DNS fails. */
  async refresh(): Promise<readonly ResolvedEndpoint[]> {
    const { name, port } = this.#options;
    const [v4, v6] = await Promise.all([
      this.#resolver.resolve4(name, { ttl: true }).catch(() => []),
      this.#resolver.resolve6(name, { ttl: true }).catch(() => []),
    ]);
    const records = [...v4, ...v6];
    if (this.#closed) return this.#current;
    let ttlMs = this.#options.minTtlMs ?? 1000;
    if (records.length > 0) {
      const next = records.map((r) => ({ id: endpointId(r.address, port), address: r.address, port }));
      const changed = next.map((e) => e.id).join(',') !== this.#current.map((e) => e.id).join(',');
      this.#current = next;
      if (changed) this.#onChange(next);
      const ttl = Math.min(...records.map((r) => r.ttl)) * 1000;
      ttlMs = Math.min(Math.max(ttl, this.#options.minTtlMs ?? 1000), this.#options.maxTtlMs ?? 300_000);
    }
    if (!this.#closed) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.refresh(), ttlMs);
      this.#timer.unref();
    }
    return this.#current;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
