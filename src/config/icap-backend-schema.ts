/**
 * The `type: icap` backend: another ICAP server (c-icap virus_scan, Symantec SPE, Kaspersky,
 * ESET, another icap-bridge) as the scanner. Appended to the backend variants in
 * backend-schema.ts.
 *
 *   backends:
 *     upstream:
 *       type: icap
 *       endpoints: [ "icap://av-1:1344/avscan", "icaps://av-2:11344/avscan" ]
 *       timeout_ms: 60000          # whole scan
 *       connect_timeout_ms: 2000
 *       preview_bytes: 4096        # optional; never above the upstream's OPTIONS Preview
 *       max_body_bytes: 0          # 0 = no limit; bigger bodies are 'too-large', not sent
 *       tls: { ca_file: /etc/icap-bridge/upstream-ca.pem, reject_unauthorized: true }
 *       # + pool keys (pool-schema.ts): balance, weights, max_concurrency, max_queue, ...
 */
import * as z from 'zod';
import { ICAP_DEFAULTS, ICAP_POOL_DEFAULTS } from '../backends/icap/icap-config.js';
import { parseIcapUrl } from '../backends/icap/icap-url.js';
import { checkPoolKeys, poolKeys } from './pool-schema.js';
import { boolean, integer, list, mapping, readableFile, SHOW_VALUE, strictMapping } from './rules.js';

function icapEndpoint() {
  return z
    .string({ error: () => 'must be an icap:// or icaps:// URL, e.g. "icap://av-1:1344/avscan"' })
    .superRefine((text, ctx) => {
      const parsed = parseIcapUrl(text);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason, params: SHOW_VALUE });
    });
}

function tlsSettings(baseDir: string) {
  const d = ICAP_DEFAULTS.tls;
  return mapping({
    /** '' = Node's built-in CA list. */
    ca_file: z.union([z.literal(''), readableFile(baseDir)]).default(d.ca_file),
    reject_unauthorized: boolean().default(d.reject_unauthorized),
  }).prefault({});
}

export function icapBackend(ctx: { readonly baseDir: string }) {
  const d = ICAP_DEFAULTS;
  return strictMapping({
    type: z.literal('icap'),
    endpoints: list(icapEndpoint(), { nonEmpty: true, unique: true }),
    timeout_ms: integer(1).default(d.timeout_ms),
    connect_timeout_ms: integer(1).default(d.connect_timeout_ms),
    /** RFC 3507 §4.5 allows any size the server advertised; 1 MiB bounds what we hold back. */
    preview_bytes: integer(0, 1_048_576).optional(),
    max_body_bytes: integer(0).default(d.max_body_bytes),
    tls: tlsSettings(ctx.baseDir),
    /** balance, weights, max_concurrency, max_queue, eject_after, cooldown_ms, health_*, dns. */
    ...poolKeys(ICAP_POOL_DEFAULTS),
  }).superRefine((b, rctx) => checkPoolKeys(b, rctx));
}
