/**
 * Backend results → one decision (DESIGN.md, "Verdicts"; step 5 of "One transaction").
 *
 * Any infected result blocks; otherwise an error under a "block" policy blocks; otherwise a
 * sanitized result (MetaDefender CDR) replaces the body; otherwise an error under an "allow"
 * policy allows (marked); only a transaction where every backend said clean is allowed as clean. Nothing unscanned is ever answered as
 * clean without the policy saying so, and that case is marked (`reason: 'error-policy'`).
 */
import type { BackendResult, ScanErrorKind } from '../backends/backend.js';
import type { SpooledBody } from '../pipeline/spooled-body.js';
import { sanitizeThreatName } from './threat-name.js';

/** What a service does when a scan produced no verdict (config `on_error`). */
export type FailurePolicy = 'block' | 'allow';

export interface ThreatEntry {
  /** Sanitized (threat-name.ts): safe for a header value. */
  name: string;
  backend: string;
}

export interface ErrorEntry {
  backend: string;
  kind: ScanErrorKind;
  /** The backend's own words, for logs only; never written to a header or the block page. */
  message: string;
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
  | { action: 'sanitize'; reason: 'sanitized'; replacement: Replacement; errors: ErrorEntry[] };

/** Backend name on the error entry made up when no backend ran at all. */
export const NO_BACKEND = 'none';

/** Merges every backend's result for one body into one decision. */
export function decide(results: readonly BackendResult[], onError: FailurePolicy): Decision {
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
  for (const r of results) {
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
          const key = `${r.backend}\u0000${name}`;
          if (seen.has(key)) continue;
          seen.add(key);
          threats.push({ name, backend: r.backend });
        }
        break;
      }
      case 'error':
        errors.push({ backend: r.backend, kind: r.kind, message: r.message });
        break;
    }
  }

  if (threats.length > 0) return { action: 'block', reason: 'infected', threats, errors };
  if (errors.length > 0 && onError === 'block') return { action: 'block', reason: 'error-policy', errors };
  if (replacement !== undefined) return { action: 'sanitize', reason: 'sanitized', replacement, errors };
  if (errors.length > 0) return { action: 'allow', reason: 'error-policy', errors };
  return { action: 'allow', reason: 'clean' };
}

/** The decision for content the service chose not to scan (empty body, skip rule). */
export function notScanned(detail: string): Decision {
  return { action: 'allow', reason: 'not-scanned', detail };
}

export type VerdictLabel = 'clean' | 'not-scanned' | 'infected' | 'sanitized' | 'error-allowed' | 'error-blocked';

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
  }
}
