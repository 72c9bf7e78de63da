/**
 * One access line per ICAP transaction (DESIGN.md "Operations"), logged with msg "access" so
 * operators can filter on it. Field names are stable: dashboards and tests depend on them.
 */
import { pino } from 'pino';
import type { Logger } from './logger.js';
import { accessLineText } from './access-line.js';
import { accessLineSquid } from './access-line-squid.js';
import type { ACCESS_LOG_FORMATS } from '../config/schema.js';

/** logging.access_log_format: pino's JSON line (the default) or Squid's text layout. */
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number];

export interface AccessRecord {
  transaction_id: string;
  client: string;
  method: string;
  service: string;
  icap_status: number;
  /** Status of the encapsulated HTTP response we returned (403 for a block page), if any. */
  http_status: number | null;
  bytes_in: number;
  bytes_out: number;
  /** The Preview the client declared, or null. */
  preview: number | null;
  body_bytes: number;
  /**
   * clean | infected | sanitized | not-scanned | error-allowed | error-blocked | rule-allowed |
   * rule-blocked | allow-listed | deny-listed | aborted | error
   */
  verdict: string;
  threats: string[];
  /** e.g. "builtin:timeout" for every backend that failed. */
  scan_errors: string[];
  /** What decided the answer: clean, infected, error-policy, not-scanned, rule, allow-list, deny-list, client-aborted... */
  reason: string;
  duration_ms: number;
  /**
   * Per backend: outcome and scan time, so a slow or failing engine is visible per transaction.
   * `part` names the multipart part a scan was of (one entry per part and backend then).
   */
  scans: { backend: string; endpoint?: string; outcome: string; ms: number; part?: string }[];
  /**
   * The verdict cache for this scan: hit (answered without scanning), miss (scanned, stored when
   * definite) or bypass (off, or content that failed to decode or split). Absent when nothing was scanned.
   */
  cache?: 'hit' | 'miss' | 'bypass';
  /** A Content-Encoding undone for scanning: the codings and `decoded` or why it failed. */
  decoding?: { codings: string[]; outcome: string; decoded_bytes?: number };
  /** A multipart/form-data upload: `split` or why splitting failed, and how many parts. */
  multipart?: { outcome: string; parts: number };
  /** Each part of a multipart upload, scanned as its own file. */
  parts?: { label: string; file_name?: string; media_type: string; bytes: number; outcome: string; threats: string[]; cached?: true }[];
  /** The engine batch the parts went to (MetaDefender Core), with its signed result's state. */
  batch?: { backend: string; id: string; endpoint: string; signed: boolean; verified: boolean | null; detail?: string };
  /** Present when the answer was committed on idle before the verdict (Squid 5.7 workaround). */
  committed?: { kicks: number; released_bytes: number };
  x_client_ip?: string;
  /** As the client sent it (possibly base64, Squid's icap_client_username_encode). */
  x_client_username?: string;
  /** The user name rules matched: x_client_username decoded when it was base64 of text. */
  user?: string;
  url?: string;
  /** The body was a piece of a file (a 206 range, a partial PUT): its Content-Range, or why it has none. */
  partial?: string;
  /** The configured policy rule that applied; absent when the service's own backends/on_error did. */
  rule?: string;
  /** What the policy did: scan, allow (without scanning) or block (without scanning). */
  action?: 'scan' | 'allow' | 'block';
  /** The allow/deny list that decided (allow_hosts, deny_sha256, ...) and the entry that matched. */
  list?: string;
  list_entry?: string;
  /** Per failed scan: its kind and what the rule's failure matrix made of it. */
  error_decisions?: { backend: string; kind: string; decision: 'allow' | 'block' }[];
}

/** pino's internals the line is built from (pino.symbols: exported for integrations, not its stable API). */
interface PinoInternals {
  [pino.symbols.timeSym]: () => string;
  [pino.symbols.chindingsSym]: string;
  [pino.symbols.streamSym]: { write(line: string): unknown };
}

/**
 * One access line for `record`, in `format`, whatever the logger's level: as Squid's access.log is
 * whatever debug_options says and c-icap's access log whatever its DebugLevel, an operator quieting
 * the server's own lines (logging.level warn) still gets the access log; logging.access_log turns
 * it off. The JSON line says level 30 (info), the level it always had.
 *
 * `json` is the line pino writes for `logger.info({ access: record }, 'access')`, byte for byte
 * (level, time, bindings, fields, msg: test/observability/access-json.test.ts holds the two side by
 * side), with the record serialized by access-line.ts instead of JSON.stringify. `squid` is
 * access-line-squid.ts's text line, into the same destination. Loggers come only from createLogger
 * (no mixin, hooks or formatters, which these lines would skip).
 */
export function writeAccessLog(logger: Logger, record: AccessRecord, enabled: boolean, format: AccessLogFormat = 'json'): void {
  if (!enabled) return;
  const internals = logger as unknown as PinoInternals;
  const line =
    format === 'squid'
      ? accessLineSquid(Date.now(), record)
      : accessLineText(logger.levels.values.info!, internals[pino.symbols.timeSym](), internals[pino.symbols.chindingsSym], record);
  internals[pino.symbols.streamSym].write(line);
}
