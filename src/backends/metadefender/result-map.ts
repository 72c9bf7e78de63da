/**
 * MetaDefender Core's answers → what a scan means (specs/metadefender-core-api.md). Pure: no I/O,
 * so every row of every table is tested without a server.
 *
 * Core's JSON is parsed defensively (§3: "until done, many fields are missing or partial"):
 * nothing here trusts a field's presence or type, and anything not understood maps to an error,
 * never to clean (§4: "Any unknown code must map to the error/unknown policy, never to allow").
 */
import type { ScanErrorKind } from '../backend.js';

/** How a `scan_all_result_i` code is turned into a verdict. */
export type CodeMapping =
  /** Clean — unless `process_info.result` is "Blocked", then blocked by that reason. */
  | { readonly to: 'clean' }
  /** Infected, whatever the policy verdict says: engines' threat names, else the reasons, else the label. */
  | { readonly to: 'infected' }
  /** Core's policy decides: "Blocked" (or no process_info) → infected by the reason; "Allowed" → clean. */
  | { readonly to: 'policy' }
  /** The content could not be judged: the service's failure policy decides. */
  | { readonly to: 'error'; readonly kind: ScanErrorKind }
  /** Not finished: keep polling. */
  | { readonly to: 'pending' };

export interface CodeRow {
  readonly label: string;
  readonly mapping: CodeMapping;
  /** Where the spec says so. */
  readonly spec: string;
}

const clean = { to: 'clean' } as const;
const infected = { to: 'infected' } as const;
const policy = { to: 'policy' } as const;
const error = (kind: ScanErrorKind) => ({ to: 'error', kind }) as const;

/**
 * Every code of §4. The spec's "suggested action" column, made concrete:
 * "allow" → clean, "block" → infected, "policy" on a detection or a policy finding → Core's own
 * policy verdict, "policy" on content Core could not judge → an error kind for our failure policy.
 */
export const RESULT_CODES: Readonly<Record<number, CodeRow>> = {
  0: { label: 'No Threat Detected', mapping: clean, spec: '§4 allow' },
  1: { label: 'Infected', mapping: infected, spec: '§4 block' },
  2: { label: 'Suspicious', mapping: infected, spec: '§4 block (configurable)' },
  3: { label: 'Failed', mapping: error('backend-error'), spec: '§4 policy: fail-closed' },
  4: { label: 'Cleaned / Deleted', mapping: infected, spec: '§4 block original' },
  5: { label: 'Unknown', mapping: error('backend-error'), spec: '§4 n/a (multi-hash lookups only)' },
  6: { label: 'Quarantined', mapping: infected, spec: '§4 block' },
  7: { label: 'Allowlisted', mapping: clean, spec: '§4 allow' },
  8: { label: 'Blocklisted', mapping: infected, spec: '§4 block' },
  9: { label: 'Exceeded Archive Depth', mapping: error('too-large'), spec: '§4 policy' },
  10: { label: 'Not Scanned', mapping: error('unsupported'), spec: '§4 policy' },
  11: { label: 'Aborted', mapping: error('backend-error'), spec: '§4 policy / retry' },
  12: { label: 'Encrypted Archive', mapping: error('encrypted'), spec: '§4 policy' },
  13: { label: 'Exceeded Archive Size', mapping: error('too-large'), spec: '§4 policy' },
  14: { label: 'Exceeded Archive File Number', mapping: error('too-large'), spec: '§4 policy' },
  15: { label: 'Password Protected Document', mapping: error('encrypted'), spec: '§4 policy' },
  16: { label: 'Exceeded Archive Timeout', mapping: error('timeout'), spec: '§4 policy' },
  17: { label: 'File Type Mismatch', mapping: policy, spec: '§4 policy (usually block)' },
  18: { label: 'Potentially Vulnerable File', mapping: policy, spec: '§4 policy' },
  19: { label: 'Canceled', mapping: error('backend-error'), spec: '§4 treat as error' },
  20: { label: 'Sensitive Data Found', mapping: policy, spec: '§4 policy (DLP)' },
  21: { label: 'YARA Rule Matched', mapping: infected, spec: '§4 block' },
  22: { label: 'Potentially Unwanted Program', mapping: policy, spec: '§4 policy' },
  23: { label: 'Unsupported File Type', mapping: error('unsupported'), spec: '§4 policy' },
  255: { label: 'In Progress', mapping: { to: 'pending' }, spec: '§4 keep polling' },
};

/** §4: "Any unknown code must map to the error/unknown policy, never to allow." */
const UNKNOWN_CODE: CodeMapping = error('backend-error');

export function codeMapping(code: number): CodeMapping {
  return RESULT_CODES[code]?.mapping ?? UNKNOWN_CODE;
}

/**
 * Blocked reasons that name a condition Core could not judge rather than a finding; a "Blocked"
 * result for one of these goes to our failure policy like the code it names. Matched ignoring case.
 * Every other reason (Infected, Sensitive Data Found, Sanitization Failed, a custom rule...) blocks.
 */
export const ERROR_REASONS: ReadonlyMap<string, ScanErrorKind> = new Map(
  Object.values(RESULT_CODES)
    .filter((row): row is CodeRow & { mapping: { to: 'error'; kind: ScanErrorKind } } => row.mapping.to === 'error')
    .map((row) => [row.label.toLowerCase(), row.mapping.kind] as const),
);

/** What one finished result means. */
export type CoreVerdict =
  | { readonly verdict: 'clean' }
  | { readonly verdict: 'infected'; readonly threats: readonly string[]; readonly byPolicy: boolean }
  | { readonly verdict: 'error'; readonly kind: ScanErrorKind; readonly message: string };

type Json = Record<string, unknown>;

function object(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
}

function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * §3 and §6: an unknown id (or hash) is answered with an object whose single member's value is
 * "Not Found" — with status 404 on some servers and 200 on others (unconfirmed), so the body
 * alone decides.
 */
export function isNotFoundDocument(value: unknown): boolean {
  const obj = object(value);
  if (!obj) return false;
  const entries = Object.entries(obj);
  return entries.length === 1 && typeof entries[0]![1] === 'string' && entries[0]![1].trim().toLowerCase() === 'not found';
}

/**
 * Whether a poll answer looks like a (possibly partial) result at all. Early answers may lack most
 * fields (§3), but one with none of data_id, file_info, scan_results and process_info is some
 * other message ("Not found" in yet another shape, a proxy's page) and must not be polled forever.
 */
export function isResultDocument(value: unknown): boolean {
  const obj = object(value);
  if (!obj) return false;
  return typeof obj['data_id'] === 'string' || ['file_info', 'scan_results', 'process_info'].some((k) => object(obj[k]) !== undefined);
}

/** §1: every error body is `{"err": "<text>"}`. */
export function errorText(value: unknown): string | undefined {
  return text(object(value)?.['err']);
}

/** The overall code, or undefined when the document has none (not a result). */
export function resultCode(doc: unknown): number | undefined {
  return integer(object(object(doc)?.['scan_results'])?.['scan_all_result_i']);
}

/**
 * §3 completion rule: "A job is finished when `process_info.progress_percentage == 100` and
 * `process_info.result` is not "Processing". `scan_results.progress_percentage` tracks only the AV
 * part; use it as a fallback when `process_info` is absent (very old servers)."
 *
 * So once process_info is there it alone decides, and a missing or non-integer percentage in it
 * means "not yet", never "ask scan_results": while sanitization, DLP and file-type checks run,
 * scan_results can already read 100 and clean ("until done, many fields are missing or partial").
 * A 255 code ("In Progress", §4) is never finished, whatever the percentages say.
 */
export function isFinished(doc: unknown): boolean {
  const root = object(doc);
  const scan = object(root?.['scan_results']);
  if (integer(scan?.['scan_all_result_i']) === 255) return false;
  const proc = root?.['process_info'];
  // Absent (undefined, or null as a serialiser may write it): the old-server fallback.
  if (proc === undefined || proc === null) return integer(scan?.['progress_percentage']) === 100;
  const info = object(proc);
  // Present but not an object: not understood, so not finished (polling ends at timeout_ms).
  if (!info) return false;
  return integer(info['progress_percentage']) === 100 && !isProcessing(info['result']);
}

/** `process_info.result` "Processing" (§3), read loosely: case and spaces are not a verdict. */
function isProcessing(result: unknown): boolean {
  return typeof result === 'string' && result.trim().toLowerCase() === 'processing';
}

/** The progress Core reports, 0–100 (process_info first), for logs. */
export function progressOf(doc: unknown): number {
  const root = object(doc);
  return integer(object(root?.['process_info'])?.['progress_percentage']) ?? integer(object(root?.['scan_results'])?.['progress_percentage']) ?? 0;
}

/** Detection names from `scan_details` (§3: an object keyed by engine, names for results 1/2). */
export function engineThreats(doc: unknown): string[] {
  const details = object(object(object(doc)?.['scan_results'])?.['scan_details']);
  if (!details) return [];
  const names: string[] = [];
  for (const engine of Object.values(details)) {
    const e = object(engine);
    const code = integer(e?.['scan_result_i']);
    const name = text(e?.['threat_found'])?.trim();
    // 22 (PUA) is also a named detection; 3/10/19/23 carry error text in threat_found, not names.
    if (name && (code === 1 || code === 2 || code === 22) && !names.includes(name)) names.push(name);
  }
  return names;
}

/** §3: `blocked_reasons` (v5 array) preferred over `blocked_reason` (string); empty when allowed. */
export function blockedReasons(doc: unknown): string[] {
  const proc = object(object(doc)?.['process_info']);
  if (!proc) return [];
  const list = proc['blocked_reasons'];
  if (Array.isArray(list)) {
    const reasons = list.filter((r): r is string => typeof r === 'string' && r.trim() !== '').map((r) => r.trim());
    if (reasons.length > 0) return [...new Set(reasons)];
  }
  const single = text(proc['blocked_reason'])?.trim();
  return single ? [single] : [];
}

/** `process_info.result`: "Allowed", "Blocked", or undefined when absent (old servers) or unrecognised. */
export function policyResult(doc: unknown): 'Allowed' | 'Blocked' | undefined {
  const result = text(object(object(doc)?.['process_info'])?.['result']);
  return result === 'Allowed' || result === 'Blocked' ? result : undefined;
}

/** §3 `process_info.outdated_data`: non-empty means a cached result from older definitions or settings. */
export function isOutdated(doc: unknown): boolean {
  const outdated = object(object(doc)?.['process_info'])?.['outdated_data'];
  return Array.isArray(outdated) && outdated.length > 0;
}

/**
 * A "Blocked" result explained only by its reasons: when every reason names a condition Core
 * could not judge, that error kind; otherwise blocked, the reasons standing in for threat names.
 */
function mapBlockedReasons(reasons: readonly string[], fallback: string): CoreVerdict {
  const kinds = reasons.map((r) => ERROR_REASONS.get(r.toLowerCase()));
  const first = kinds[0];
  if (first !== undefined && kinds.every((k) => k !== undefined)) {
    return { verdict: 'error', kind: first, message: `MetaDefender blocked the file: ${reasons.join(', ')}` };
  }
  return { verdict: 'infected', threats: reasons.length > 0 ? reasons : [fallback], byPolicy: true };
}

/** The verdict of a finished result document (§3, §4). */
export function mapResult(doc: unknown): CoreVerdict {
  const code = resultCode(doc);
  if (code === undefined) return { verdict: 'error', kind: 'backend-error', message: 'MetaDefender result has no scan_results.scan_all_result_i' };
  const row = RESULT_CODES[code];
  const label = row?.label ?? `result code ${code}`;
  const mapping = codeMapping(code);
  const reasons = blockedReasons(doc);
  const result = policyResult(doc);
  switch (mapping.to) {
    case 'pending':
      return { verdict: 'error', kind: 'backend-error', message: 'MetaDefender result is still in progress (code 255)' };
    case 'error':
      return {
        verdict: 'error',
        kind: mapping.kind,
        message: `MetaDefender: ${label} (scan_all_result_i ${code}${reasons.length > 0 ? `, blocked: ${reasons.join(', ')}` : ''})`,
      };
    case 'infected': {
      const threats = engineThreats(doc);
      if (threats.length > 0) return { verdict: 'infected', threats, byPolicy: false };
      return { verdict: 'infected', threats: reasons.length > 0 ? reasons : [label], byPolicy: false };
    }
    case 'policy': {
      if (result === 'Allowed') return { verdict: 'clean' };
      // "Blocked", or no process_info at all: a finding without Core's policy verdict blocks.
      const threats = engineThreats(doc);
      return { verdict: 'infected', threats: threats.length > 0 ? threats : reasons.length > 0 ? reasons : [label], byPolicy: true };
    }
    case 'clean':
      if (result === 'Blocked') return mapBlockedReasons(reasons, 'Blocked by MetaDefender policy');
      return { verdict: 'clean' };
  }
}

/** Where the sanitized output of a finished result is, if Core made one (§3 post_processing, `sanitized`). */
export type SanitizedOutput =
  /** MetaDefender Cloud's shape: a (time-limited) link. Checked first, as §3 says. */
  | { readonly from: 'link'; readonly url: string; readonly fileName: string | undefined }
  /** Core: `GET /file/converted/{data_id}` on the node that did the job (§5). */
  | { readonly from: 'converted'; readonly fileName: string | undefined };

/** `post_processing.actions_ran` values that mean a usable output file exists. */
const SANITIZED_ACTIONS = new Set(['sanitized', 'sanitized partially']);

export function sanitizedOutput(doc: unknown): SanitizedOutput | undefined {
  const root = object(doc);
  const post = object(object(root?.['process_info'])?.['post_processing']);
  const fileName = text(post?.['converted_destination'])?.trim() || undefined;
  const cloud = object(root?.['sanitized']);
  const link = text(cloud?.['file_path'])?.trim();
  if (link && /^https?:\/\//i.test(link)) return { from: 'link', url: link, fileName };
  const ran = (text(post?.['actions_ran']) ?? '').split('|').map((a) => a.trim().toLowerCase());
  if (ran.some((a) => SANITIZED_ACTIONS.has(a))) return { from: 'converted', fileName };
  return undefined;
}

/** How a failed `POST /file` is handled (§2 responses table). */
export interface SubmitFailure {
  /** The content was not accepted: another endpoint may take it (§9: "A 503 on submit → try the next server"). */
  readonly retryElsewhere: boolean;
  readonly kind: ScanErrorKind;
  readonly message: string;
}

/** §2: disk-space 400s (Core ≥ 4.19) are the one retryable 400; the err text is all that tells them apart. */
const DISK_SPACE = /disk|space|storage/i;

export function submitFailure(status: number, err: string | undefined): SubmitFailure {
  const said = err ? `: ${err}` : '';
  switch (status) {
    case 400:
      if (err && DISK_SPACE.test(err)) return { retryElsewhere: true, kind: 'overloaded', message: `MetaDefender is short of disk space (HTTP 400${said})` };
      return { retryElsewhere: false, kind: 'backend-error', message: `MetaDefender rejected the upload (HTTP 400${said}); check the apikey and rule` };
    case 401:
      // Not documented for v4/v5 (v3 used it for a bad key); treated like the 400 apikey case.
      return { retryElsewhere: false, kind: 'backend-error', message: `MetaDefender rejected the apikey (HTTP 401${said})` };
    case 403:
      return { retryElsewhere: false, kind: 'backend-error', message: `MetaDefender denied access: apikey, rule or user_agent not permitted (HTTP 403${said})` };
    case 411:
      return { retryElsewhere: false, kind: 'backend-error', message: `MetaDefender says the upload had no Content-Length (HTTP 411${said}): a bug in icap-bridge` };
    case 413:
      return { retryElsewhere: false, kind: 'too-large', message: `MetaDefender refused the file as too large (HTTP 413${said})` };
    case 422:
      return { retryElsewhere: false, kind: 'backend-error', message: `MetaDefender refused the upload as empty (HTTP 422${said}): a bug in icap-bridge` };
    case 429:
    case 503:
      // 429 is undocumented; treated like 503 (§2).
      return { retryElsewhere: true, kind: 'overloaded', message: `MetaDefender is too busy (HTTP ${status}${said})` };
    case 500:
      return { retryElsewhere: false, kind: 'backend-error', message: `MetaDefender server error (HTTP 500${said})` };
    default:
      return { retryElsewhere: false, kind: 'backend-error', message: `MetaDefender answered the upload with HTTP ${status}${said}` };
  }
}
