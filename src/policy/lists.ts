/**
 * A service's allow and deny lists, compiled for lookups: SHA-256 and exact hosts in sets, URL
 * prefixes and globs scanned in order. Built once per configuration generation (a reload
 * builds new ones from the re-read files).
 */
import { createHash } from 'node:crypto';
import { compileGlob, type Glob } from './glob.js';
import { LIST_KEYS, type ListKey } from './list-files.js';

/** One list file as the configuration loader read it. */
export interface ListFileData {
  readonly file: string;
  readonly entries: readonly string[];
}

export type ListsConfig = { readonly [K in ListKey]?: readonly ListFileData[] };

export interface ListHit {
  readonly list: ListKey;
  /** The entry as written in the file (normalized: lower-case hash or host). */
  readonly entry: string;
  readonly file: string;
}

type Side = 'allow' | 'deny';

interface Lookup {
  /** The first entry matching `value`, in file order for globs and prefixes. */
  find(value: string): { entry: string; file: string } | undefined;
  readonly size: number;
}

export class CompiledLists {
  readonly #lookups: ReadonlyMap<ListKey, Lookup>;

  constructor(config: ListsConfig | undefined) {
    const lookups = new Map<ListKey, Lookup>();
    for (const key of LIST_KEYS) {
      const files = config?.[key] ?? [];
      if (files.some((f) => f.entries.length > 0)) lookups.set(key, key.endsWith('urls') ? urlLookup(files) : exactOrGlobLookup(files));
    }
    this.#lookups = lookups;
  }

  has(key: ListKey): boolean {
    return this.#lookups.has(key);
  }

  /** No list has an entry: nothing to look up. */
  get empty(): boolean {
    return this.#lookups.size === 0;
  }

  /** True when a body's SHA-256 is needed: some hash list has entries. */
  get needsSha256(): boolean {
    return this.has('allow_sha256') || this.has('deny_sha256');
  }

  /** Host lists first, then URL lists. */
  findRequest(side: Side, host: string | undefined, url: string | undefined): ListHit | undefined {
    if (host !== undefined) {
      const hit = this.#find(`${side}_hosts`, host);
      if (hit) return hit;
    }
    return url === undefined ? undefined : this.#find(`${side}_urls`, url);
  }

  findHash(side: Side, sha256: string): ListHit | undefined {
    return this.#find(`${side}_sha256`, sha256.toLowerCase());
  }

  #find(list: ListKey, value: string): ListHit | undefined {
    const found = this.#lookups.get(list)?.find(value);
    return found && { list, ...found };
  }
}

/** Hashes and hosts: exact entries in a map, glob entries (hosts with `*`) in order. */
function exactOrGlobLookup(files: readonly ListFileData[]): Lookup {
  const exact = new Map<string, string>(); // entry → file
  const globs: { glob: Glob; file: string }[] = [];
  for (const { file, entries } of files) {
    for (const entry of entries) {
      if (entry.includes('*')) globs.push({ glob: compileGlob(entry, { caseInsensitive: true }), file });
      else if (!exact.has(entry)) exact.set(entry, file);
    }
  }
  return {
    size: exact.size + globs.length,
    find(value) {
      const v = value.toLowerCase();
      const file = exact.get(v);
      if (file !== undefined) return { entry: v, file };
      const g = globs.find((x) => x.glob.matches(v));
      return g && { entry: g.glob.pattern, file: g.file };
    },
  };
}

/** URLs: an entry with `*` is a glob over the whole URL, any other entry a prefix. */
function urlLookup(files: readonly ListFileData[]): Lookup {
  const matchers: { entry: string; file: string; matches: (url: string) => boolean }[] = [];
  for (const { file, entries } of files) {
    for (const entry of entries) {
      const glob = entry.includes('*') ? compileGlob(entry) : null;
      matchers.push({ entry, file, matches: glob ? (u) => glob.matches(u) : (u) => u.startsWith(entry) });
    }
  }
  return {
    size: matchers.length,
    find(value) {
      const m = matchers.find((x) => x.matches(value));
      return m && { entry: m.entry, file: m.file };
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
