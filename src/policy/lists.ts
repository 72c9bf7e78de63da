/**
 * A service's allow and deny lists, compiled for lookups: SHA-256 and exact hosts in sets, URL
 * prefixes and globs scanned in order. Built once per configuration generation (a reload
 * builds new ones from the re-read files).
 *
 * Requests are compared in the forms of url-forms.ts, and conservatively: a deny list matches
 * when any reading of the request matches (the URL read canonically or loosely; the Host header
 * or the URL's own host), an allow list only when every reading does.
 */
import { createHash } from 'node:crypto';
import { compileGlob, type Glob } from './glob.js';
import { LIST_KEYS, type ListKey } from './list-files.js';
import { requestHost } from './url.js';
import { canonicalHost, compileUrlPattern, urlForms, type UrlForms } from './url-forms.js';

/** One list file as the configuration loader read it. */
export interface ListFileData {
  readonly file: string;
  readonly entries: readonly string[];
}

export type ListsConfig = { readonly [K in ListKey]?: readonly ListFileData[] };

export interface ListHit {
  readonly list: ListKey;
  /** The entry as normalized (lower-case hash, canonical host or URL). */
  readonly entry: string;
  readonly file: string;
}

type Side = 'allow' | 'deny';

type Found = { entry: string; file: string } | undefined;

interface Lookup {
  /** The first entry matching `value`, in file order for globs. */
  find(value: string): Found;
}

interface UrlLookup {
  /** The first entry matching the request's URL, in file order. */
  find(forms: UrlForms, side: Side): Found;
}

export class CompiledLists {
  readonly #lookups: ReadonlyMap<ListKey, Lookup>;
  readonly #urlLookups: ReadonlyMap<ListKey, UrlLookup>;

  constructor(config: ListsConfig | undefined) {
    const lookups = new Map<ListKey, Lookup>();
    const urlLookups = new Map<ListKey, UrlLookup>();
    for (const key of LIST_KEYS) {
      const files = config?.[key] ?? [];
      if (!files.some((f) => f.entries.length > 0)) continue;
      if (key.endsWith('urls')) urlLookups.set(key, urlLookup(files));
      else lookups.set(key, exactOrGlobLookup(files, key.endsWith('hosts') ? canonicalHost : (x) => x.toLowerCase()));
    }
    this.#lookups = lookups;
    this.#urlLookups = urlLookups;
  }

  has(key: ListKey): boolean {
    return this.#lookups.has(key) || this.#urlLookups.has(key);
  }

  /** No list has an entry: nothing to look up. */
  get empty(): boolean {
    return this.#lookups.size === 0 && this.#urlLookups.size === 0;
  }

  /** True when a body's SHA-256 is needed: some hash list has entries. */
  get needsSha256(): boolean {
    return this.has('allow_sha256') || this.has('deny_sha256');
  }

  /**
   * Host lists first, then URL lists. The host lists see both the Host header's host and the
   * URL's own (an absolute-form request can name two): deny on either, allow only when both are
   * allowed.
   */
  findRequest(side: Side, host: string | undefined, url: string | undefined): ListHit | undefined {
    const hostList = this.#lookups.get(`${side}_hosts`);
    const urlList = this.#urlLookups.get(`${side}_urls`);
    if (hostList) {
      // The URL's own host, canonical (url.ts), without building its readings for a host list alone.
      const hosts = [host, url === undefined ? undefined : requestHost(url, undefined)].filter((h): h is string => h !== undefined && h !== '');
      const hits = hosts.map((h) => hostList.find(h));
      const hit = side === 'deny' ? hits.find((x) => x !== undefined) : hits.every((x) => x !== undefined) ? hits[0] : undefined;
      if (hit) return { list: `${side}_hosts`, ...hit };
    }
    // Parsed only when a URL list will look at it (the memo in urlForms serves the other side).
    const found = url !== undefined && urlList !== undefined ? urlList.find(urlForms(url), side) : undefined;
    return found && { list: `${side}_urls`, ...found };
  }

  findHash(side: Side, sha256: string): ListHit | undefined {
    const list: ListKey = `${side}_sha256`;
    const found = this.#lookups.get(list)?.find(sha256);
    return found && { list, ...found };
  }
}

/** Hashes and hosts: exact entries in a map, glob entries (hosts with `*`) in order. */
function exactOrGlobLookup(files: readonly ListFileData[], normalize: (value: string) => string): Lookup {
  const exact = new Map<string, string>(); // entry → file
  const globs: { glob: Glob; file: string }[] = [];
  for (const { file, entries } of files) {
    for (const entry of entries) {
      // Normalized like exact entries (A-labels for hosts), whether or not list-files.ts read them.
      if (entry.includes('*')) globs.push({ glob: compileGlob(normalize(entry), { caseInsensitive: true }), file });
      else if (!exact.has(normalize(entry))) exact.set(normalize(entry), file);
    }
  }
  return {
    find(value) {
      const v = normalize(value);
      const file = exact.get(v);
      if (file !== undefined) return { entry: v, file };
      const g = globs.find((x) => x.glob.matches(v));
      return g && { entry: g.glob.pattern, file: g.file };
    },
  };
}

/** URLs: an entry with `*` is a glob over the URL, any other entry a prefix (url-forms.ts). */
function urlLookup(files: readonly ListFileData[]): UrlLookup {
  const matchers = files.flatMap(({ file, entries }) => entries.map((entry) => ({ file, pattern: compileUrlPattern(entry, { prefix: true }) })));
  return {
    find(forms, side) {
      const m = matchers.find((x) => x.pattern.matches(forms, side));
      return m && { entry: m.pattern.entry, file: m.file };
    },
  };
}

/**
 * What the ISTag needs to know about the lists: a digest of every entry per list (not the file
 * paths, and not comments), so a changed list changes the tag and the same lists give the same
 * tag on every node. Undefined when the service has no lists.
 */
export function listsFingerprint(config: ListsConfig | undefined): string | undefined {
  if (config === undefined) return undefined;
  const digest = createHash('sha256');
  let any = false;
  for (const key of LIST_KEYS) {
    const entries = [...new Set((config[key] ?? []).flatMap((f) => f.entries))].sort();
    if (entries.length === 0) continue;
    any = true;
    digest.update(`${key}\n${entries.join('\n')}\n\n`);
  }
  return any ? digest.digest('hex').slice(0, 32) : undefined;
}
