/**
 * Routes a service path (and its aliases) to a service (DESIGN.md step 2). Aliases let Squid
 * configurations written for MetaDefender ICAP Server (OMSScanReq-AV / OMSScanResp-AV) or c-icap
 * (avscan, virus_scan, squidclamav, srv_clamav) work unchanged. Matching ignores case, as the
 * config loader guarantees names and aliases are unique without it.
 *
 * Each service's policy (rules and allow/deny lists, src/policy) is compiled here, once per
 * configuration generation, from the lists the loader read: a reload re-reads and recompiles.
 */
import { readFileSync } from 'node:fs';
import type { Backend } from '../backends/backend.js';
import type { Config, ServiceConfig } from '../config/index.js';
import { VerdictCache } from '../pipeline/verdict-cache.js';
import { compileServicePolicy, listsFingerprint, type CompiledRule, type ServicePolicy } from '../policy/index.js';
import { computeIstag } from './istag.js';

export interface Service {
  readonly name: string;
  readonly config: ServiceConfig;
  readonly methods: ReadonlySet<string>;
  /** Every backend the service or one of its rules may scan with (readiness, metrics). */
  readonly backends: readonly Backend[];
  readonly policy: ServicePolicy;
  readonly blockPageTemplate: string;
  /**
   * RFC 3507 §4.7: changes whenever answers may change. Follows the engines' versions live (a
   * clamd signature update seen by its health check changes it at once, without SIGHUP).
   */
  readonly istag: string;
  /** The backends a scan rule scans with, in the rule's order. */
  backendsFor(rule: CompiledRule): readonly Backend[];
  /** The generation's verdict cache (config `cache`), shared by its services; null when off. */
  readonly verdictCache: VerdictCache | null;
  /**
   * Some backend of the service or its rules looks bodies up by SHA-256 (Backend.usesBodySha256,
   * MetaDefender's hash_lookup): each body is hashed as it arrives, as for the verdict cache.
   */
  readonly backendsUseBodySha256: boolean;
}

export class ServiceRegistry {
  readonly #byPath = new Map<string, Service>();
  readonly #serviceTags: (() => string)[] = [];

  constructor(config: Config, backends: ReadonlyMap<string, Backend>) {
    const tagOf = this.#serviceTags;
    const c = config.cache;
    const verdictCache = c.enabled ? new VerdictCache({ maxEntries: c.max_entries, ttlMs: c.ttl_s * 1000, maxBytes: c.max_bytes }) : null;
    for (const [name, svc] of Object.entries(config.services)) {
      const blockPageTemplate = readFileSync(svc.block_page, 'utf8');
      const policy = compileServicePolicy(svc);
      const used = [...new Set(policy.rules.flatMap((r) => r.backends))];
      const byRule = new Map(policy.rules.map((r) => [r, r.backends.map((b) => backends.get(b)!)] as const));
      const usedBackends = used.map((b) => backends.get(b)!);
      const istag = liveIstag(
        {
          service: istagServiceInput(svc),
          blockPageTemplate,
          backends: used.map((b) => ({ name: b, config: config.backends[b] })),
        },
        usedBackends,
      );
      tagOf.push(istag);
      const service: Service = {
        name,
        config: svc,
        methods: new Set(svc.methods),
        backends: usedBackends,
        policy,
        blockPageTemplate,
        get istag() {
          return istag();
        },
        backendsFor: (rule) => byRule.get(rule) ?? [],
        verdictCache,
        backendsUseBodySha256: usedBackends.some((b) => b.usesBodySha256 === true),
      };
      this.#byPath.set(name.toLowerCase(), service);
      for (const alias of svc.aliases) this.#byPath.set(alias.toLowerCase(), service);
    }
  }

  /** Used on responses that belong to no service (errors before routing). */
  get serverIstag(): string {
    return computeIstag(this.#serviceTags.map((t) => t()).sort());
  }

  /** `path` as the decoder gives it: no leading or trailing slash. */
  resolve(path: string): Service | undefined {
    return this.#byPath.get(path.toLowerCase());
  }

  get services(): Service[] {
    return [...new Set(this.#byPath.values())];
  }
}

/**
 * The tag of `inputs` plus the current versions of `backends`, recomputed only when a version
 * string changed (reading them is cheap; hashing on every answer would not be).
 */
function liveIstag(inputs: Record<string, unknown>, backends: readonly Backend[]): () => string {
  let seen: string[] | undefined;
  let tag = '';
  return () => {
    // Compared in place: this runs for every answer, and a version changes rarely.
    if (seen === undefined || backends.some((b, i) => b.version !== seen![i])) {
      const versions = backends.map((b) => b.version);
      seen = versions;
      tag = computeIstag({ ...inputs, versions });
    }
    return tag;
  };
}

/**
 * Service settings that cannot change the answer to a given message, only how or whether it is
 * exchanged. RFC 3507 §4.7: the ISTag "is used for validating that previous ICAP server responses
 * can still be considered fresh"; it must change when the answer the service gives for the same
 * message could differ, and need not otherwise. A needless change costs every cache behind Squid
 * its stored answers, so these are left out of the hash:
 *  - options_ttl_s: when the client asks OPTIONS again; no answer to a message changes.
 *  - preview_bytes: how much body the client sends before 100 Continue. Only a final policy
 *    outcome answers at the preview's end (policy-tracker.ts); anything else reads the rest, and
 *    the verdict is on the whole message.
 *  - allow_204, allow_206: "unchanged" as a 204, a 206 (use-original-body) or a 200 echo. The
 *    adapted HTTP message is the original in all three (§4.6); only its transfer differs.
 *  - commit_on_idle, trickle, cut_after_commit: an answer started before the verdict. A clean
 *    message still ends as the same echo; a blocked one as a cut, never a complete answer anyone
 *    could keep, whose block/allow verdict is the same.
 *  - methods, aliases: which requests reach the service at all. A method not offered gets a 405
 *    error, which is no adaptation to keep; the messages it does take get the same answers.
 *  - block_page: the file's path; its content enters the hash on its own (blockPageTemplate).
 * Everything else — backends, on_error, rules, lists, content_decoding, multipart, and any key
 * added later unless it is listed here — is hashed: a new setting changes the ISTag by default.
 */
const TRANSPORT_ONLY_KEYS = [
  'options_ttl_s',
  'preview_bytes',
  'allow_204',
  'allow_206',
  'commit_on_idle',
  'trickle',
  'cut_after_commit',
  'methods',
  'aliases',
  'block_page',
] as const satisfies readonly (keyof ServiceConfig)[];

/**
 * The service settings that decide verdicts: all but TRANSPORT_ONLY_KEYS. Lists enter as a digest
 * of their entries (not the file paths, not megabytes of hashes), and rules and lists only when
 * present, so a configuration without them keeps the tag it had before they existed.
 */
function istagServiceInput(svc: ServiceConfig): Record<string, unknown> {
  const { rules, lists, ...rest } = svc;
  const input: Record<string, unknown> = { ...rest };
  for (const key of TRANSPORT_ONLY_KEYS) delete input[key];
  const fingerprint = listsFingerprint(lists);
  if (rules !== undefined && rules.length > 0) input['rules'] = rules;
  if (fingerprint !== undefined) input['lists'] = fingerprint;
  return input;
}
