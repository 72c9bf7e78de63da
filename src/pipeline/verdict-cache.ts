/**
 * Verdict cache (issue 5): a repeated file is answered without rescanning.
 *
 * Contract:
 * - Key = SHA-256 of the scanned content (hashing.ts computes it while spooling) + a context
 *   digest of the engines' versions (Backend.version, which changes with signature updates) and
 *   the policy fingerprint. A new signature set or policy gives new keys; old entries age out.
 * - Only definite verdicts are stored: every backend said clean or infected. A result set with an
 *   error or a sanitized (CDR-rewritten) result is never cached (`cacheableVerdict` returns null).
 * - LRU in memory, bounded by entry count and, optionally, by an estimate of bytes; entries expire
 *   `ttlMs` after they were stored. Expiry is lazy (checked on access, and the least recently used
 *   end is pruned on insert): there are no timers, so the cache never keeps the process alive.
 * - `get` counts a hit or a miss; `stats()` exposes hits, misses, evictions, expirations and size
 *   for metrics. Logging the outcome per transaction is the caller's (access log `cache` field).
 * - `now` is injectable for tests; it must be monotonic (performance.now by default).
 */
import { createHash } from 'node:crypto';
import type { BackendResult } from '../backends/backend.js';

/** What the cache remembers for one content + context. */
export type CachedVerdict =
  | { readonly outcome: 'clean'; readonly backends: readonly string[] }
  | { readonly outcome: 'infected'; readonly threats: readonly string[]; readonly backends: readonly string[] };

export type CacheLookup = { readonly hit: true; readonly verdict: CachedVerdict } | { readonly hit: false };

export interface VerdictCacheOptions {
  /** Most entries kept; the least recently used goes first. */
  readonly maxEntries: number;
  /** How long a verdict stays valid after it was stored. */
  readonly ttlMs: number;
  /** Optional bound on the estimated memory of all entries (keys, names, overhead). */
  readonly maxBytes?: number;
  /** Monotonic milliseconds; tests pass a fake clock. */
  readonly now?: () => number;
}

export interface VerdictCacheStats {
  readonly hits: number;
  readonly misses: number;
  /** Entries dropped to respect maxEntries or maxBytes. */
  readonly evictions: number;
  /** Entries dropped because their TTL had passed. */
  readonly expirations: number;
  readonly size: number;
  readonly bytes: number;
}

interface Entry {
  readonly verdict: CachedVerdict;
  readonly expiresAt: number;
  readonly bytes: number;
}

/** Rough per-entry cost of the Map slot, the entry and the verdict objects. */
const ENTRY_OVERHEAD_BYTES = 200;

/**
 * Digest of everything besides the content that a verdict depends on. Compute it once per
 * generation (config or signature reload), not per transaction.
 */
export function verdictCacheContext(engineVersions: readonly string[], policyFingerprint: string): string {
  const hash = createHash('sha256');
  // Length-prefixed, so ["a,b"] and ["a", "b"] differ.
  for (const version of engineVersions) hash.update(`${version.length}:${version};`);
  hash.update(`policy ${policyFingerprint.length}:${policyFingerprint}`);
  return hash.digest('base64url').slice(0, 22);
}

/** `sha256` is the content's hex digest; `context` from verdictCacheContext. */
export function verdictCacheKey(sha256: string, context: string): string {
  if (!/^[0-9a-f]{64}$/i.test(sha256)) throw new TypeError(`not a SHA-256 hex digest: ${sha256}`);
  return `${sha256.toLowerCase()}.${context}`;
}

/**
 * The verdict to cache for one body's backend results, or null when any result is not definite
 * (an error, a sanitized body) or there are no results. Infected wins; threats are de-duplicated.
 */
export function cacheableVerdict(results: readonly BackendResult[]): CachedVerdict | null {
  if (results.length === 0) return null;
  const backends: string[] = [];
  const threats = new Set<string>();
  for (const result of results) {
    if (result.outcome !== 'clean' && result.outcome !== 'infected') return null;
    backends.push(result.backend);
    if (result.outcome === 'infected') for (const threat of result.threats) threats.add(threat);
  }
  if (results.some((r) => r.outcome === 'infected')) {
    return { outcome: 'infected', threats: [...threats], backends };
  }
  return { outcome: 'clean', backends };
}

export class VerdictCache {
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  /** Map iteration order is insertion order: the first key is the least recently used. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;
  #expirations = 0;

  constructor(opts: VerdictCacheOptions) {
    if (!Number.isSafeInteger(opts.maxEntries) || opts.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${opts.maxEntries}`);
    }
    if (!(opts.ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${opts.ttlMs}`);
    if (opts.maxBytes !== undefined && !(opts.maxBytes > 0)) {
      throw new RangeError(`maxBytes must be positive, got ${opts.maxBytes}`);
    }
    this.#maxEntries = opts.maxEntries;
    this.#ttlMs = opts.ttlMs;
    this.#maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Looks a key up, counting a hit or a miss; a hit becomes the most recently used. */
  get(key: string): CacheLookup {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt > this.#now()) {
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      this.#hits++;
      return { hit: true, verdict: entry.verdict };
    }
    if (entry) {
      this.#remove(key, entry);
      this.#expirations++;
    }
    this.#misses++;
    return { hit: false };
  }

  /**
   * Stores a definite verdict (replacing any entry for the key). Returns false, storing nothing,
   * when the verdict is null (not cacheable) or alone exceeds maxBytes.
   */
  set(key: string, verdict: CachedVerdict | null): boolean {
    if (verdict === null || (verdict.outcome !== 'clean' && verdict.outcome !== 'infected')) return false;
    const frozen = freezeVerdict(verdict);
    const bytes = estimateBytes(key, frozen);
    if (bytes > this.#maxBytes) return false;
    const old = this.#entries.get(key);
    if (old) this.#remove(key, old);
    const now = this.#now();
    this.#pruneExpired(now);
    this.#entries.set(key, { verdict: frozen, expiresAt: now + this.#ttlMs, bytes });
    this.#bytes += bytes;
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const [lruKey, lru] = this.#entries.entries().next().value as [string, Entry];
      this.#remove(lruKey, lru);
      this.#evictions++;
    }
    return true;
  }

  delete(key: string): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    this.#remove(key, entry);
    return true;
  }

  /** Drops every entry (e.g. on a signature reload when keys would change anyway). Counters stay. */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  stats(): VerdictCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      expirations: this.#expirations,
      size: this.#entries.size,
      bytes: this.#bytes,
    };
  }

  /** Drops expired entries from the least recently used end, stopping at the first live one. */
  #pruneExpired(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) return;
      this.#remove(key, entry);
      this.#expirations++;
    }
  }

  #remove(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

/** A private frozen copy: callers may reuse their arrays, and hits hand out the stored object. */
function freezeVerdict(verdict: CachedVerdict): CachedVerdict {
  const backends = Object.freeze([...verdict.backends]);
  return verdict.outcome === 'infected'
    ? Object.freeze({ outcome: 'infected', threats: Object.freeze([...verdict.threats]), backends })
    : Object.freeze({ outcome: 'clean', backends });
}

function estimateBytes(key: string, verdict: CachedVerdict): number {
  let bytes = ENTRY_OVERHEAD_BYTES + 2 * key.length;
  for (const name of verdict.backends) bytes += 2 * name.length + 16;
  if (verdict.outcome === 'infected') for (const threat of verdict.threats) bytes += 2 * threat.length + 16;
  return bytes;
}
