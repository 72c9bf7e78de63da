/**
 * Endpoint-pool keys shared by every pooled backend type (clamd, metadefender, icap), DESIGN.md
 * "Backends and pools". They sit at the top level of a backend's mapping, beside `endpoints`:
 *
 *   backends:
 *     clamav:
 *       type: clamd
 *       endpoints: [ "clamd-a:3310", "clamd-b:3310" ]
 *       balance: weighted              # round-robin | least-outstanding | weighted
 *       weights: { "clamd-b:3310": 3 } # endpoint text → weight (default 1)
 *       max_concurrency: 8             # scans at once per endpoint
 *       max_queue: 32                  # scans waiting for a slot across the pool; then 'overloaded'
 *       eject_after: 3                 # consecutive failures that eject an endpoint…
 *       cooldown_ms: 10000             # …for this long, until its health check passes again
 *       health_interval_ms: 5000
 *       health_timeout_ms: 2000
 *       dns: { enabled: true }         # each endpoint's host name → its A/AAAA records, by TTL
 *
 * With `dns.enabled`, an endpoint whose host is a name (not an IP literal or a socket path)
 * becomes one pool endpoint per address; a job stays pinned to the address that accepted it
 * while the Host header and TLS server name stay the DNS name.
 */
import * as z from 'zod';
import { SHARED_POOL_DEFAULTS as D } from '../backends/pool/pool-settings.js';
import { boolean, integer, mapping, oneOf } from './rules.js';

export const BALANCE_STRATEGIES = ['round-robin', 'least-outstanding', 'weighted'] as const;

export interface PoolDefaults {
  readonly max_concurrency: number;
  readonly max_queue: number;
  readonly health_interval_ms: number;
}

/** `host:port` of a DNS server, IPv4 or bracketed IPv6. */
function dnsServer() {
  const rule = 'must be "address:port" of a DNS server, e.g. "127.0.0.1:53" or "[::1]:53"';
  return z.string({ error: () => rule }).regex(/^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/, { error: () => rule });
}

function dnsSettings() {
  return mapping({
    enabled: boolean().default(D.dns.enabled),
    /** The resolver to ask; '' = the system's. */
    server: z.union([z.literal(''), dnsServer()]).default(D.dns.server),
    /** Bounds on re-resolution, whatever the records' TTL says. */
    min_ttl_ms: integer(100).default(D.dns.min_ttl_ms),
    max_ttl_ms: integer(100).default(D.dns.max_ttl_ms),
  }).prefault({});
}

/** The keys to spread into a backend's strictMapping. `defaults` differ per engine type. */
export function poolKeys(defaults: PoolDefaults) {
  return {
    balance: oneOf(BALANCE_STRATEGIES).default(D.balance),
    /** Endpoint text exactly as written in `endpoints` → weight; checked by checkPoolKeys. */
    weights: z.record(z.string(), integer(1, 1000), { error: () => 'must be a mapping of endpoint to an integer weight' }).default({}),
    max_concurrency: integer(1).default(defaults.max_concurrency),
    max_queue: integer(0).default(defaults.max_queue),
    eject_after: integer(1).default(D.eject_after),
    cooldown_ms: integer(0).default(D.cooldown_ms),
    health_interval_ms: integer(100).default(defaults.health_interval_ms),
    health_timeout_ms: integer(1).default(D.health_timeout_ms),
    dns: dnsSettings(),
  };
}

/** Cross-key rules of the pool keys, for a backend's superRefine. */
export function checkPoolKeys(
  b: { endpoints: readonly string[]; weights: Readonly<Record<string, number>>; dns: { min_ttl_ms: number; max_ttl_ms: number } },
  ctx: z.RefinementCtx,
): void {
  for (const key of Object.keys(b.weights)) {
    if (!b.endpoints.includes(key)) {
      ctx.addIssue({ code: 'custom', path: ['weights', key], message: `names no endpoint in "endpoints" (${b.endpoints.join(', ')})` });
    }
  }
  if (b.dns.max_ttl_ms < b.dns.min_ttl_ms) {
    ctx.addIssue({ code: 'custom', path: ['dns', 'max_ttl_ms'], message: `must be at least dns.min_ttl_ms (${b.dns.min_ttl_ms})` });
  }
}
