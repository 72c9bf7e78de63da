/**
 * Backend results → one decision (DESIGN.md, "Verdicts"; step 5 of "One transaction").
 *
 * Any infected result blocks; otherwise an error whose kind the failure policy maps to "block"
 * blocks; otherwise a sanitized result (MetaDefender CDR) replaces the body; otherwise errors the
 * policy allows allow (marked); only a transaction where every backend said clean is allowed as
 * clean. Nothing unscanned is ever answered as clean without the policy saying so, and that case
 * is marked (`reason: 'error-policy'`).
 *
 * The failure policy is the failure matrix of the rule that chose the backends: one word for
 * every kind, or a per-kind map whose missing kinds block. With a map, every error entry also
 * says what its kind decided (`decision`), so the header and the log can state it per error.
 *
 * The policy stage (src/policy) can also decide without a scan — a rule's allow or block, an
 * allow or deny list — and those decisions are built here too, so one type covers every answer.
 */
import type { BackendResult, ScanErrorKind } from '../backends/backend.js';
import type { SpooledBody } from '../pipeline/spooled-body.js';
import { sanitizeHeaderText, sanitizeThreatName } from './threat-name.js';

export const FAILURE_ACTIONS = ['block', 'allow'] as const;
/** What a non-verdict outcome (timeout, unreachable, ...) leads to. */
export type FailureAction = (typeof FAILURE_ACTIONS)[number];
/**
 * What a service or rule does when a scan produced no verdict (config `on_error`): one action for
 * every kind, or a per-kind map in which a kind left out blocks.
 */
export type FailurePolicy = FailureAction | { readonly [K in ScanErrorKind]?: FailureAction };

/**
 * Outcomes a one-word `on_error: allow` does not cover: a decompression bomb is an attack on the
 * scanner, not an unavailable engine, so it blocks unless a per-kind map allows it by name.
 */
export const BLOCK_UNLESS_NAMED: readonly ScanErrorKind[] = ['decompression-bomb'];

/** The action `policy` gives an error of `kind`; unlisted kinds block. */
export function failureAction(policy: FailurePolicy, kind: ScanErrorKind): FailureAction {
  if (typeof policy !== 'string') return policy[kind] ?? 'block';
  return policy === 'allow' && BLOCK_UNLESS_NAMED.includes(kind) ? 'block' : policy;
}

/** Longest part label kept in headers and pages; client file names can be long. */
export const MAX_PART_LABEL_LENGTH = 100;

export interface ThreatEntry {
  /** Sanitized (threat-name.ts): safe for a header value. */
  name: string;
  backend: string;
  /** The multipart part it was found in (its label, sanitized like a threat name), if any. */
  part?: string;
}

export interface ErrorEntry {
  backend: string;
  kind: ScanErrorKind;
  /** The backend's own words, for logs only; never written to a header or the block page. */
  message: string;
  /**
   * What this error's kind decided; present when the failure policy was a per-kind map, or when
   * a one-word policy did not apply to the kind (BLOCK_UNLESS_NAMED).
   */
  decision?: FailureAction;
  /** The multipart part the error was about (sanitized label), if any. */
  part?: string;
}

/** A rewritten body from one engine, to send instead of the original. */
export interface Replacement {
  backend: string;
  body: SpooledBody;
  fileName?: string;
  contentType?: string;
  /** Why the engine rewrote it (policy reasons, threat names it removed); sanitized text. */
  notes: string[];
}

export type Decision =
  | { action: 'allow'; reason: 'clean' }
  /** Clean without a scan (e.g. empty body); built by the caller with {@link notScanned}. */
  | { action: 'allow'; reason: 'not-scanned'; detail: string }
  /** Errors, and the policy said allow: MUST be marked in a header and in the log. */
  | { action: 'allow'; reason: 'error-policy'; errors: ErrorEntry[] }
  | { action: 'block'; reason: 'infected'; threats: ThreatEntry[]; errors: ErrorEntry[] }
  | { action: 'block'; reason: 'error-policy'; errors: ErrorEntry[] }
  /** An engine returned a sanitized copy: it goes out instead of the original (never as 204). */
  | { action: 'sanitize'; reason: 'sanitized'; replacement: Replacement; errors: ErrorEntry[] }
  /** A policy rule allowed or blocked without scanning (MUST be marked, like every unscanned allow). */
  | { action: 'allow'; reason: 'rule'; rule: string }
  | { action: 'block'; reason: 'rule'; rule: string }
  /** A list entry matched: `list` is the config key (allow_hosts, deny_sha256, ...). */
  | { action: 'allow'; reason: 'allow-list'; list: string; entry: string }
  | { action: 'block'; reason: 'deny-list'; list: string; entry: string };

/** Backend name on the error entry made up when no backend ran at all. */
export const NO_BACKEND = 'none';

/**
 * Merges every backend's result for one body into one decision. `parts[i]`, when given, is the
 * label of the multipart part `results[i]` is about (partLabel(): file name, `field x`, `part n`);
 * threats and errors then carry it, sanitized, so the answer can name the part.
 */
export function decide(results: readonly BackendResult[], onError: FailurePolicy, parts?: readonly (string | undefined)[]): Decision {
  // A service with no backend (or a fan-out that returned nothing) must never pass content as clean.
  if (results.length === 0) {
    return {
      action: 'block',
      reason: 'error-policy',
      errors: [{ backend: NO_BACKEND, kind: 'backend-error', message: 'no backend ran' }],
    };
  }

  const threats: ThreatEntry[] = [];
  const seen = new Set<string>();
  const errors: ErrorEntry[] = [];
  let replacement: Replacement | undefined;
  for (const [i, r] of results.entries()) {
    const label = parts?.[i];
    const part = label === undefined ? undefined : partName(label);
    switch (r.outcome) {
      case 'clean':
        break;
      case 'sanitized':
        // The first engine's copy wins; several CDR engines on one service would be a config choice.
        replacement ??= {
          backend: r.backend,
          body: r.body,
          ...(r.fileName !== undefined && { fileName: r.fileName }),
          ...(r.contentType !== undefined && { contentType: r.contentType }),
          notes: r.threats.map(sanitizeThreatName),
        };
        break;
      case 'infected': {
        // An engine that says "infected" without a name still blocks; the name becomes Unknown-Threat.
        const names = r.threats.length > 0 ? r.threats : [''];
        for (const raw of names) {
          const name = sanitizeThreatName(raw);
          // Dedupe by name + backend after sanitizing: two raw names may clean up to the same text.
          const key = `${r.backend}\u0000${name}\u0000${part ?? ''}`;
          if (seen.has(key)) continue;
          seen.add(key);
          threats.push({ name, backend: r.backend, ...(part !== undefined && { part }) });
        }
        break;
      }
      case 'error': {
        const decision = failureAction(onError, r.kind);
        errors.push({
          backend: r.backend,
          kind: r.kind,
          message: r.message,
          ...((typeof onError !== 'string' || decision !== onError) && { decision }),
          ...(part !== undefined && { part }),
        });
        break;
      }
    }
  }

  if (threats.length > 0) return { action: 'block', reason: 'infected', threats, errors };
  if (errors.some((e) => failureAction(onError, e.kind) === 'block')) return { action: 'block', reason: 'error-policy', errors };
  if (replacement !== undefined) return { action: 'sanitize', reason: 'sanitized', replacement, errors };
  if (errors.length > 0) return { action: 'allow', reason: 'error-policy', errors };
  return { action: 'allow', reason: 'clean' };
}

/** A part label fit for a header value and a page: printable ASCII, no `;`, bounded, never empty. */
export function partName(label: string): string {
  const clean = sanitizeHeaderText(label).slice(0, MAX_PART_LABEL_LENGTH).trimEnd();
  return clean === '' ? 'part' : clean;
}

/** The decision for content there was nothing to scan in (no body, empty body). */
export function notScanned(detail: string): Decision {
  return { action: 'allow', reason: 'not-scanned', detail };
}

/** A rule whose action is allow or block decided without a scan. */
export function byRule(action: 'allow' | 'block', rule: string): Decision {
  // Two literals, so each narrows to its own member of the union (plan.ts extracts the blocks).
  return action === 'allow' ? { action, reason: 'rule', rule } : { action, reason: 'rule', rule };
}

/** An allow-list (`allow_*`) or deny-list (`deny_*`) entry matched. */
export function byList(action: 'allow' | 'block', list: string, entry: string): Decision {
  return action === 'allow' ? { action, reason: 'allow-list', list, entry } : { action, reason: 'deny-list', list, entry };
}

export type VerdictLabel =
  | 'clean'
  | 'not-scanned'
  | 'infected'
  | 'sanitized'
  | 'error-allowed'
  | 'error-blocked'
  | 'rule-allowed'
  | 'rule-blocked'
  | 'allow-listed'
  | 'deny-listed';

/** One short word for access logs and metric labels. */
export function verdictLabel(d: Decision): VerdictLabel {
  switch (d.reason) {
    case 'clean':
      return 'clean';
    case 'not-scanned':
      return 'not-scanned';
    case 'infected':
      return 'infected';
    case 'sanitized':
      return 'sanitized';
    case 'error-policy':
      return d.action === 'allow' ? 'error-allowed' : 'error-blocked';
    case 'rule':
      return d.action === 'allow' ? 'rule-allowed' : 'rule-blocked';
    case 'allow-list':
      return 'allow-listed';
    case 'deny-list':
      return 'deny-listed';
  }
}
