/**
 * One Core server as the backend sees it (specs/metadefender-core-api.md §8, §9): its HTTP client,
 * its health probe, and the version and engine info that feed the backend version. Choosing a
 * server, load, ejection and the check schedule are the generic pool's (src/backends/pool).
 *
 *   check (the pool's active check):  GET /readyz ── 200 ─► ok
 *                                           └─ 404 (v4, no /readyz) ─► GET /version from then on
 *   info (after a passed check that is the first, follows a failed one, or every INFO_EVERY):
 *        GET /version, GET /stat/engines, in the background so the check stays short
 */
import { CoreEndpoint, MetaDefenderError } from './core-endpoint.js';

/** Version and engine info are refreshed every this many passed checks (and when a server comes back). */
const INFO_EVERY = 12;

export class CoreNode {
  readonly core: CoreEndpoint;
  /** Each info call gets this long. */
  readonly #timeoutMs: number;
  /** undefined until known; false once /readyz answered 404 (v4). */
  #hasReadyz: boolean | undefined = undefined;
  /** `5.10.1` from /version, and engine identities from /stat/engines. */
  version: string | undefined = undefined;
  engines: string | undefined = undefined;
  /** Passed checks since version and engines were last asked for; undefined = never. */
  #infoAge: number | undefined = undefined;
  #lastCheckPassed = false;
  #info: Promise<void> = Promise.resolve();

  constructor(core: CoreEndpoint, timeoutMs: number) {
    this.core = core;
    this.#timeoutMs = timeoutMs;
  }

  /** The info refresh started by the last check, if any (creation waits for it: it sets `version`). */
  get infoSettled(): Promise<void> {
    return this.#info;
  }

  /** §8: /readyz on v5 (any non-200 is "not ready"), /version on v4 which has no /readyz. */
  async check(signal: AbortSignal): Promise<boolean> {
    const ok = await this.#probe(signal);
    const cameBack = ok && !this.#lastCheckPassed;
    this.#lastCheckPassed = ok;
    if (!ok) return false;
    if (this.#infoAge !== undefined) this.#infoAge++;
    if (this.#infoAge === undefined || this.#infoAge >= INFO_EVERY || cameBack) {
      this.#infoAge = 0;
      this.#info = this.#refreshInfo();
    }
    return true;
  }

  async #probe(signal: AbortSignal): Promise<boolean> {
    try {
      if (this.#hasReadyz !== false) {
        const ready = await this.core.json('GET', '/readyz', signal);
        if (ready.status === 200) {
          this.#hasReadyz = true;
          return true;
        }
        if (ready.status !== 404 || this.#hasReadyz === true) return false;
        this.#hasReadyz = false;
      }
      const version = await this.core.json('GET', '/version', signal);
      if (version.status === 200) this.#recordVersion(version.json);
      return version.status === 200 && version.json !== undefined;
    } catch (err) {
      if (err instanceof MetaDefenderError) return false;
      throw err;
    }
  }

  async #refreshInfo(): Promise<void> {
    try {
      const version = await this.core.json('GET', '/version', AbortSignal.timeout(this.#timeoutMs));
      if (version.status === 200) this.#recordVersion(version.json);
      const engines = await this.core.json('GET', '/stat/engines', AbortSignal.timeout(this.#timeoutMs));
      if (engines.status === 200 && Array.isArray(engines.json)) this.engines = describeEngines(engines.json);
    } catch {
      // Info is best effort: the last known values stay.
    }
  }

  #recordVersion(json: unknown): void {
    const version = (json as { version?: unknown } | undefined)?.version;
    if (typeof version === 'string' && version !== '') this.version = version;
  }
}

/**
 * `metadefender <versions>` plus engine identities when known, sorted so that nodes of a cluster
 * with the same Core servers report the same string (it feeds the ISTag).
 */
export function describeVersion(nodes: readonly CoreNode[]): string {
  const versions = [...new Set(nodes.map((n) => n.version).filter((v): v is string => v !== undefined))].sort();
  const engines = [...new Set(nodes.map((n) => n.engines).filter((e): e is string => e !== undefined))].sort();
  const base = `metadefender ${versions.length > 0 ? versions.join(',') : 'unknown'}`;
  return engines.length > 0 ? `${base} engines=${engines.join(';')}` : base;
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
