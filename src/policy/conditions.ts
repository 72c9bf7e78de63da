/**
 * One rule's `match` → a predicate over request attributes and body facts. Every key given must
 * hold (AND); inside a key's list any entry may match (OR). The predicate answers true, false,
 * or undefined when it depends on a body fact not known yet (file type before the first bytes,
 * size before the end when no Content-Length was declared): select-rule.ts then waits.
 */
import { trimOws } from '../../protocol/index.js';
import type { BodyFacts, HeaderLookup, HeaderSource, RequestAttributes } from './attributes.js';
import { HEADER_SOURCES } from './attributes.js';
import { compileGlob, type Glob } from './glob.js';
import { compileAddressSet } from './ip-match.js';
import { headMatchText, matchText } from './match-text.js';
import type { HeaderConditionConfig, HeaderOperator, RuleAction, RuleMatchConfig } from './rule-config.js';
import { HEADER_OPERATORS } from './rule-config.js';
import { canonicalHost, compileUrlPattern, urlForms } from './url-forms.js';

export type Tristate = boolean | undefined;
type Condition = (attrs: RequestAttributes, facts: BodyFacts) => Tristate;

export interface CompiledMatch {
  evaluate(attrs: RequestAttributes, facts: BodyFacts): Tristate;
  /** Depends on the body's size (declared first, then the real one). */
  readonly usesSize: boolean;
  readonly usesFileType: boolean;
}

/**
 * `action` is the rule's: where a request has several readings (a URL spelled several ways, an
 * upload with several files), a block rule matches when any reading does and an allow rule only
 * when every one does, so that no spelling or wrapping turns a block into a pass. A scan rule
 * reads the URL canonically, and takes an upload only when every file in it is of a type it
 * lists: its engines and its on_error are chosen for those types, and one zip part must not put
 * an exe beside it under an archive rule's lenient on_error.
 */
export function compileMatch(match: RuleMatchConfig | undefined, action: RuleAction = 'scan'): CompiledMatch {
  const m = match ?? {};
  const conditions: Condition[] = [];
  if (m.client) {
    const set = compileAddressSet(m.client);
    conditions.push((a) => set.has(a.client));
  }
  if (m.peer) {
    const set = compileAddressSet(m.peer);
    conditions.push((a) => set.has(a.peer));
  }
  if (m.user) {
    // Patterns and users are both text in NFC (match-text.ts; attributes.ts decodes the users).
    const globs = m.user.map((p) => compileGlob(matchText(p), { caseInsensitive: true }));
    conditions.push((a) => a.users.some((u) => anyMatch(globs, u)));
  }
  if (m.method) {
    const methods = new Set(m.method.map((x) => x.toUpperCase()));
    conditions.push((a) => a.httpMethod !== undefined && methods.has(a.httpMethod.toUpperCase()));
  }
  if (m.icap_method) {
    const methods = new Set<string>(m.icap_method);
    conditions.push((a) => methods.has(a.icapMethod));
  }
  if (m.host) {
    // Request hosts are canonical (url.ts hostOnly): `3221226247` is `192.0.2.7` on both sides, and
    // `bücher.example` is `xn--bcher-kva.example` (RFC 5890 §2.3.2.1; a glob label by label).
    const globs = m.host.map((p) => compileGlob(canonicalHost(p), { caseInsensitive: true }));
    conditions.push((a) => a.host !== undefined && anyMatch(globs, a.host));
  }
  if (m.url) {
    // Without `*` an entry is the exact URL. The readings (url-forms.ts) are a deny list's for a
    // block rule and an allow list's for an allow rule; a scan rule compares canonical forms.
    const patterns = m.url.map((p) => compileUrlPattern(p, { prefix: false }));
    const mode = action === 'block' ? 'deny' : action === 'allow' ? 'allow' : 'rule';
    conditions.push((a) => {
      if (a.url === undefined) return false;
      const forms = urlForms(a.url);
      return patterns.some((p) => p.matches(forms, mode));
    });
  }
  if (m.content_type) {
    const globs = m.content_type.map((p) => compileGlob(matchText(p), { caseInsensitive: true }));
    conditions.push((a) => a.contentType !== undefined && anyMatch(globs, a.contentType));
  }
  const usesSize = m.min_size !== undefined || m.max_size !== undefined;
  if (usesSize) {
    const min = m.min_size ?? 0;
    const max = m.max_size ?? Number.POSITIVE_INFINITY;
    conditions.push((a, f) => {
      const size = bodySize(a, f);
      return size === undefined ? undefined : size >= min && size <= max;
    });
  }
  if (m.file_type) {
    const types = new Set<string>(m.file_type);
    const listed = (t: string): boolean => types.has(t);
    conditions.push((_a, f) => {
      if (f.fileTypes === undefined) return undefined;
      if (f.fileTypes.length === 0) return false; // no bytes: no type
      return action === 'block' ? f.fileTypes.some(listed) : f.fileTypes.every(listed);
    });
  }
  for (const header of m.headers ?? []) conditions.push(compileHeaderCondition(header));
  if (m.partial !== undefined) {
    const wanted = m.partial;
    conditions.push((a) => (a.partial !== undefined) === wanted);
  }

  return {
    usesSize,
    usesFileType: m.file_type !== undefined,
    evaluate(attrs, facts) {
      let unknown = false;
      for (const condition of conditions) {
        const result = condition(attrs, facts);
        if (result === false) return false; // one false settles it, whatever is still unknown
        if (result === undefined) unknown = true;
      }
      return unknown ? undefined : true;
    },
  };
}

/** The real size once known; before that the declared Content-Length; else unknown. */
export function bodySize(attrs: RequestAttributes, facts: BodyFacts): number | undefined {
  if (facts.size !== undefined) return facts.size;
  if (facts.complete) return 0;
  return attrs.declaredSize;
}

function anyMatch(globs: readonly Glob[], text: string): boolean {
  return globs.some((g) => g.matches(text));
}

/**
 * Values are head bytes, the operand YAML text: both are compared as text (match-text.ts), and
 * lower-cased as text, so `Büro` meets the UTF-8 bytes of `BÜRO`.
 */
function compileHeaderCondition(config: HeaderConditionConfig): Condition {
  const op = HEADER_OPERATORS.find((o) => config[o] !== undefined) as HeaderOperator;
  const caseSensitive = config.case_sensitive === true;
  const fold = (s: string): string => (caseSensitive ? s : s.toLowerCase());
  const wanted = fold(matchText(config[op]!));
  const test = OPERATORS[op];
  const sources: readonly HeaderSource[] = config.in ?? HEADER_SOURCES;
  return (a) =>
    sources.some((source) => {
      const lookup: HeaderLookup | undefined = a.headers[source];
      return lookup !== undefined && lookup.getAll(config.name).some((value) => test(fold(headMatchText(trimOws(value))), wanted));
    });
}

const OPERATORS: { readonly [O in HeaderOperator]: (value: string, wanted: string) => boolean } = {
  equals: (v, w) => v === w,
  contains: (v, w) => v.includes(w),
  prefix: (v, w) => v.startsWith(w),
  suffix: (v, w) => v.endsWith(w),
};
