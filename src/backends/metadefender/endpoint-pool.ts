/**
 * The Core servers of one backend (specs/metadefender-core-api.md §9, DESIGN.md "Backends and
 * pools"): round robin over the servers that are up, active health checks with hysteresis, a
 * short passive cool-down after a connection failure or a 503, and the version string.
 *
 *   every intervalMs (unref'd):  GET /readyz ── 200 ─► ok
 *                                      └─ 404 (v4, no /readyz) ─► GET /version from then on
 *   DOWN_AFTER failed checks in a row ─► down;  UP_AFTER good checks in a row ─► up
 *
 * Selection happens only at submit time; every later call for a job goes to the endpoint that
 * accepted it (§9: a data_id exists only on the server that issued it), which the caller keeps.
 */
import type { EndpointStatus } from '../backend.js';
import { CoreEndpoint, MetaDefenderError } from './core-endpoint.js';

const DOWN_AFTER = 2;
const UP_AFTER = 2;
/** Health and info calls get this long. */
const CHECK_TIMEOUT_MS = 2_000;
/** Version and engine info are refreshed every this many checks (and when a server comes up). */
const INFO_EVERY = 12;

export interface PoolEndpoint {
  readonly core: CoreEndpoint;
  /** From health checks, with hysteresis. */
  healthy: boolean;
  /** Passive: skip this endpoint for new jobs until then (ms since epoch). */
  coolDownUntil: number;
  /** Scans holding a job on it now. */
  inFlight: number;
  /** undefined until known; false once /readyz answered 404 (v4). */
  hasReadyz: boolean | undefined;
  goodChecks: number;
  badChecks: number;
  /** `5.10.1` from /version, and engine identities from /stat/engines. */
  version: string | undefined;
  engines: string | undefined;
  /** Checks since version and engines were last asked for; undefined = never. */
  infoAge: number | undefined;
}

export interface EndpointPoolOptions {
  readonly urls: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly healthIntervalMs: number;
}

export class EndpointPool {
  readonly #endpoints: PoolEndpoint[];
  readonly #intervalMs: number;
  #next = 0;
  #timer: NodeJS.Timeout | null = null;
  #checking: Promise<void> | null = null;
  #closed = false;

  constructor(options: EndpointPoolOptions) {
    this.#intervalMs = options.healthIntervalMs;
    this.#endpoints = options.urls.map((url) => ({
      core: new CoreEndpoint({ url, connections: options.connections, headers: options.headers }),
      healthy: true,
      coolDownUntil: 0,
      inFlight: 0,
      hasReadyz: undefined,
      goodChecks: 0,
      badChecks: 0,
      version: undefined,
      engines: undefined,
      infoAge: undefined,
    }));
  }

  get endpoints(): readonly PoolEndpoint[] {
    return this.#endpoints;
  }

  /**
   * First health round (its result sets each endpoint's state directly, without hysteresis),
   * then the periodic checks. Resolves when the first round is done.
   */
  async start(): Promise<void> {
    await this.#checkAll(true);
    if (this.#closed || this.#intervalMs <= 0) return;
    this.#timer = setInterval(() => {
      this.#checking ??= this.#checkAll(false).finally(() => (this.#checking = null));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /**
   * The endpoint for a new job: round robin over those up and not cooling down, skipping
   * `exclude` (already tried for this scan); if none is up, any endpoint not yet tried — a stale
   * "down" must not stop a scan that might succeed. `advance: false` only peeks (a hash lookup
   * must not shift the rotation, or with two servers every upload would land on the same one).
   */
  pick(exclude: ReadonlySet<PoolEndpoint>, { advance = true }: { advance?: boolean } = {}): PoolEndpoint | undefined {
    const now = Date.now();
    const n = this.#endpoints.length;
    let fallback: PoolEndpoint | undefined;
    for (let i = 0; i < n; i++) {
      const ep = this.#endpoints[(this.#next + i) % n]!;
      if (exclude.has(ep)) continue;
      if (ep.healthy && ep.coolDownUntil <= now) {
        if (advance) this.#next = (this.#next + i + 1) % n;
        return ep;
      }
      fallback ??= ep;
    }
    if (fallback && advance) this.#next = (this.#endpoints.indexOf(fallback) + 1) % n;
    return fallback;
  }

  /** Passive health: keep new jobs away from `ep` for `ms`. */
  coolDown(ep: PoolEndpoint, ms: number): void {
    ep.coolDownUntil = Math.max(ep.coolDownUntil, Date.now() + ms);
  }

  status(): EndpointStatus[] {
    const now = Date.now();
    return this.#endpoints.map((ep) => ({
      endpoint: ep.core.url,
      healthy: !this.#closed && ep.healthy && ep.coolDownUntil <= now,
      inFlight: ep.inFlight,
      queued: ep.core.queued,
    }));
  }

  /**
   * `metadefender <versions>` plus engine identities when known, sorted so that nodes of a cluster
   * with the same Core servers report the same string (it feeds the ISTag).
   */
  version(): string {
    const versions = [...new Set(this.#endpoints.map((ep) => ep.version).filter((v): v is string => v !== undefined))].sort();
    const engines = [...new Set(this.#endpoints.map((ep) => ep.engines).filter((e): e is string => e !== undefined))].sort();
    const base = `metadefender ${versions.length > 0 ? versions.join(',') : 'unknown'}`;
    return engines.length > 0 ? `${base} engines=${engines.join(';')}` : base;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#checking?.catch(() => {});
    await Promise.allSettled(this.#endpoints.map((ep) => ep.core.close()));
  }

  async #checkAll(first: boolean): Promise<void> {
    await Promise.all(this.#endpoints.map((ep) => this.#check(ep, first)));
  }

  async #check(ep: PoolEndpoint, first: boolean): Promise<void> {
    if (this.#closed) return;
    const ok = await this.#probe(ep);
    if (this.#closed) return;
    const wasHealthy = ep.healthy;
    if (ok) {
      ep.goodChecks++;
      ep.badChecks = 0;
      if (first || ep.goodChecks >= UP_AFTER) ep.healthy = true;
    } else {
      ep.badChecks++;
      ep.goodChecks = 0;
      if (first || ep.badChecks >= DOWN_AFTER) ep.healthy = false;
    }
    if (ep.infoAge !== undefined) ep.infoAge++;
    if (ok && (ep.infoAge === undefined || ep.infoAge >= INFO_EVERY || !wasHealthy)) {
      ep.infoAge = 0;
      await this.#refreshInfo(ep);
    }
  }

  /** §8: /readyz on v5 (any non-200 is "not ready"), /version on v4 which has no /readyz. */
  async #probe(ep: PoolEndpoint): Promise<boolean> {
    try {
      if (ep.hasReadyz !== false) {
        const ready = await ep.core.json('GET', '/readyz', AbortSignal.timeout(CHECK_TIMEOUT_MS));
        if (ready.status === 200) {
          ep.hasReadyz = true;
          return true;
        }
        if (ready.status !== 404 || ep.hasReadyz === true) return false;
        ep.hasReadyz = false;
      }
      const version = await ep.core.json('GET', '/version', AbortSignal.timeout(CHECK_TIMEOUT_MS));
      if (version.status === 200) this.#recordVersion(ep, version.json);
      return version.status === 200 && version.json !== undefined;
    } catch (err) {
      if (err instanceof MetaDefenderError) return false;
      throw err;
    }
  }

  async #refreshInfo(ep: PoolEndpoint): Promise<void> {
    try {
      const version = await ep.core.json('GET', '/version', AbortSignal.timeout(CHECK_TIMEOUT_MS));
      if (version.status === 200) this.#recordVersion(ep, version.json);
      const engines = await ep.core.json('GET', '/stat/engines', AbortSignal.timeout(CHECK_TIMEOUT_MS));
      if (engines.status === 200 && Array.isArray(engines.json)) ep.engines = describeEngines(engines.json);
    } catch (err) {
      if (!(err instanceof MetaDefenderError)) throw err;
    }
  }

  #recordVersion(ep: PoolEndpoint, json: unknown): void {
    const version = (json as { version?: unknown } | undefined)?.version;
    if (typeof version === 'string' && version !== '') ep.version = version;
  }
}

/** `name/version/def_time` of each active engine, sorted: changes when definitions update. */
function describeEngines(list: readonly unknown[]): string | undefined {
  const parts: string[] = [];
  for (const item of list) {
    const e = item as Record<string, unknown> | null;
    if (!e || typeof e !== 'object' || e['active'] === false) continue;
    const name = typeof e['eng_name'] === 'string' ? e['eng_name'] : typeof e['eng_id'] === 'string' ? e['eng_id'] : undefined;
    if (!name) continue;
    const ver = typeof e['eng_ver'] === 'string' ? e['eng_ver'] : '?';
    const defs = typeof e['def_time'] === 'string' ? e['def_time'] : '?';
    parts.push(`${name}/${ver}/${defs}`);
  }
  return parts.length > 0 ? parts.sort().join(',') : undefined;
}
