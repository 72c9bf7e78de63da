/**
 * ISTag (RFC 3507 §4.7): changes whenever the service's answers may change. Derived only from
 * what decides verdicts — the service's settings that change answers (not those that only change
 * how they are exchanged: service-registry.ts, TRANSPORT_ONLY_KEYS), its backends' settings and
 * engine/signature versions, and the block page — so every node with the same configuration and
 * engines shows the same tag, and caches upstream (Squid) drop stale answers when one changes.
 */
import { createHash } from 'node:crypto';

/** Stable JSON: object keys sorted, so key order in the YAML does not change the tag. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A quoted tag of 29 characters inside the quotes (§4.7 allows at most 32). */
export function computeIstag(inputs: unknown): string {
  const digest = createHash('sha256').update(canonical(inputs)).digest('base64url');
  return `"IB-${digest.slice(0, 26)}"`;
}
