/**
 * A service's whole policy: allow and deny lists, then its rules, then the implicit last rule
 * (the service's own `backends` and `on_error`, matching everything), so existing configurations
 * behave as before. Order of precedence, highest first:
 *
 *   1. deny lists   (hosts, URLs, SHA-256)  → block
 *   2. allow lists  (hosts, URLs, SHA-256)  → allow without scanning
 *   3. rules, the first that matches        → scan with its backends / allow / block
 *   4. the implicit rule                    → scan with the service's backends
 *
 * evaluatePolicy() gives the outcome for what is known so far, and whether it is final: nothing
 * learned later (the hash, the real size) can change it. Only a final outcome may answer before
 * the body is complete (e.g. a 204 inside the preview).
 */
import type { FailureAction, FailurePolicy } from '../verdict/index.js';
import type { BodyFacts, RequestAttributes } from './attributes.js';
import { compileMatch } from './conditions.js';
import { CompiledLists, type ListHit, type ListsConfig } from './lists.js';
import type { RuleAction, RuleConfig } from './rule-config.js';
import { selectRule } from './select-rule.js';

export interface CompiledRule {
  /** The configured rule's name; null for the service's implicit rule. */
  readonly name: string | null;
  readonly action: RuleAction;
  /** Backend names to scan with (scan rules); empty otherwise. */
  readonly backends: readonly string[];
  readonly onError: FailurePolicy;
  readonly usesSize: boolean;
  readonly usesFileType: boolean;
  evaluate: ReturnType<typeof compileMatch>['evaluate'];
}

export interface ServicePolicyConfig {
  readonly backends: readonly string[];
  readonly on_error: FailureAction;
  readonly rules?: readonly RuleConfig[] | undefined;
  readonly lists?: ListsConfig | undefined;
}

export interface ServicePolicy {
  /** The configured rules, then the implicit one. */
  readonly rules: readonly CompiledRule[];
  readonly lists: CompiledLists;
  /** Some rule looks at the file type: the first body bytes are worth keeping. */
  readonly usesFileType: boolean;
  /**
   * No rules and no list entries: the implicit rule always applies, final from the start. The
   * transaction then skips request attributes and file-type sniffing (the per-request fast path).
   */
  readonly onlyImplicitRule: boolean;
}

export type PolicyOutcome =
  | { readonly kind: 'pending' }
  | { readonly kind: 'list'; readonly action: 'allow' | 'block'; readonly hit: ListHit; readonly final: boolean }
  | { readonly kind: 'rule'; readonly rule: CompiledRule; readonly final: boolean };

export function compileServicePolicy(service: ServicePolicyConfig): ServicePolicy {
  const rules: CompiledRule[] = (service.rules ?? []).map((r) => {
    const match = compileMatch(r.match, r.action);
    return {
      name: r.name,
      action: r.action,
      backends: r.action === 'scan' ? (r.backends ?? service.backends) : [],
      onError: r.on_error ?? service.on_error,
      usesSize: match.usesSize,
      usesFileType: match.usesFileType,
      evaluate: match.evaluate,
    };
  });
  rules.push({
    name: null,
    action: 'scan',
    backends: service.backends,
    onError: service.on_error,
    usesSize: false,
    usesFileType: false,
    evaluate: () => true,
  });
  const lists = new CompiledLists(service.lists);
  return { rules, lists, usesFileType: rules.some((r) => r.usesFileType), onlyImplicitRule: rules.length === 1 && lists.empty };
}

export function evaluatePolicy(policy: ServicePolicy, attrs: RequestAttributes, facts: BodyFacts): PolicyOutcome {
  const { lists } = policy;
  const denied = lists.findRequest('deny', attrs.host, attrs.url) ?? findHash(lists, 'deny', facts);
  if (denied) return { kind: 'list', action: 'block', hit: denied, final: true };

  const allowed = lists.findRequest('allow', attrs.host, attrs.url) ?? findHash(lists, 'allow', facts);
  // A deny hash still to come outranks an allow by host or URL.
  if (allowed) return { kind: 'list', action: 'allow', hit: allowed, final: facts.complete || !lists.has('deny_sha256') };

  const selection = selectRule(policy.rules, attrs, facts);
  switch (selection.kind) {
    case 'pending':
      return { kind: 'pending' };
    case 'none':
      // Unreachable with the implicit rule last; never let it mean "allow".
      throw new Error('no policy rule matched: the implicit rule is missing');
    case 'matched':
      return {
        kind: 'rule',
        rule: selection.rule,
        // A hash still to come can outrank any rule (deny: block; allow: allow).
        final: facts.complete || (!lists.needsSha256 && !selection.onDeclaredSize),
      };
  }
}

/**
 * A hash list entry for the complete body: its own digest, the decoded body's (the file a client
 * that decodes gets), and for deny lists each part's. A known-good part does not allow the upload
 * that carries it; a known-bad one blocks it.
 */
function findHash(lists: CompiledLists, side: 'allow' | 'deny', facts: BodyFacts): ListHit | undefined {
  if (!facts.complete || !lists.needsSha256) return undefined;
  const digests = [facts.sha256, facts.decodedSha256, ...(side === 'deny' ? (facts.pieceSha256s ?? []) : [])];
  for (const digest of digests) {
    const hit = digest === undefined ? undefined : lists.findHash(side, digest);
    if (hit) return hit;
  }
  return undefined;
}
