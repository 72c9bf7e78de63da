/**
 * The ICAP response headers a decision produces. Every value here is printable ASCII on one line,
 * except X-Violations-Found, whose folding (CRLF + TAB) the extension defines.
 */
import type { Decision, ErrorEntry } from './decide.js';

export type HeaderList = [string, string][];

// RFC 7230 §3.2.6 tchar. Backend names come from config, but they land inside a structured header
// value (`errors=a:timeout,b:unreachable`), so anything else — `,` `:` `;` `=`, spaces, controls —
// becomes `_`.
const NON_TCHAR = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/g;

/** A backend name (or any config string) as a header token. */
export function headerToken(value: string): string {
  const token = value.replace(NON_TCHAR, '_');
  return token === '' ? '-' : token;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PRINTABLE_ASCII = /^[\x20-\x7e]$/;

/**
 * A parameter value that should stay readable (a part label such as `eicar.bin (base64)` or
 * `field comment`): as it is when it is a token, else a quoted-string (RFC 9110 §5.6.6 parameter
 * values are `token / quoted-string`). Inside the quotes `"` and `\` are escaped (§5.6.4
 * quoted-pair), and anything but printable ASCII — CR, LF, other controls, non-ASCII — becomes
 * `?`: the value stays one line of ASCII (no header injection), and `,` `;` `=` inside the quotes
 * do not end the list or the parameter for a parser that follows §5.6.
 */
export function headerParamValue(value: string): string {
  if (TOKEN.test(value)) return value;
  let quoted = '';
  // for..of walks code points, so an emoji (a surrogate pair) becomes one `?`, not two.
  for (const ch of value) quoted += !PRINTABLE_ASCII.test(ch) ? '?' : ch === '"' || ch === '\\' ? `\\${ch}` : ch;
  return `"${quoted}"`;
}

/**
 * `X-ICAP-Bridge-Decision` — on every plan, so an allow after a failed scan, or without a scan, is
 * visible to the client and nothing fails open silently (DESIGN.md, "Verdicts"). Forms:
 *
 *   <allow|block|sanitize>; reason=<clean|not-scanned|infected|error-policy|sanitized>
 *       [; errors=<backend>:<kind>[:<allow|block>],...][; rule=<name>]
 *   <allow|block>; reason=rule; rule=<name>                  a rule decided without a scan
 *   allow; reason=allow-list; list=<allow_hosts|allow_urls|allow_sha256>
 *   block; reason=deny-list; list=<deny_hosts|deny_urls|deny_sha256>
 *
 * `:<allow|block>` after an error is what the rule's failure matrix made of that error's kind;
 * it is written when the matrix is per-kind (with one word for all kinds the action says it,
 * except for a kind the word does not cover, such as decompression-bomb).
 * `rule=` names the configured rule that chose the backends; it is absent when the service's
 * own `backends`/`on_error` applied. Then, after an infected multipart upload,
 * `part=<label>[,<label>...]` names the parts the threats were in, each a token or, when the
 * label has spaces or separators (`part="eicar.bin (base64)"`, `part="field comment"`), a
 * quoted-string (headerParamValue), and after an
 * answer taken from the verdict cache, `cache=hit`. Parameters only ever get appended, so a
 * parser of the older forms (`action; reason=...; errors=backend:kind`) still reads the new ones.
 */
export function decisionHeader(d: Decision, rule?: string, opts: { readonly cacheHit?: boolean } = {}): [string, string] {
  let value = plainDecision(d.action, d.reason);
  switch (d.reason) {
    case 'rule':
      return ['X-ICAP-Bridge-Decision', `${value}; rule=${headerToken(d.rule)}`];
    case 'allow-list':
    case 'deny-list':
      return ['X-ICAP-Bridge-Decision', `${value}; list=${headerToken(d.list)}`];
    default: {
      const errors = 'errors' in d ? d.errors : [];
      if (errors.length > 0) value += `; errors=${errorList(errors)}`;
      if (rule !== undefined) value += `; rule=${headerToken(rule)}`;
      const parts = d.reason === 'infected' ? [...new Set(d.threats.flatMap((t) => (t.part === undefined ? [] : [headerParamValue(t.part)])))] : [];
      if (parts.length > 0) value += `; part=${parts.join(',')}`;
      if (opts.cacheHit === true) value += '; cache=hit';
      return ['X-ICAP-Bridge-Decision', value];
    }
  }
}

/**
 * `<action>; reason=<reason>`, the same string each time for the same pair: the 204 answer cache
 * (src/server/response-cache.ts) is keyed by this value, and a string built per request had to be
 * hashed per request (2.5–3 % of a null-body REQMOD's CPU in a profile, BENCHMARKS.md Session 7).
 * Actions and reasons are a few words of decide.ts, so the table stays tiny.
 */
const PLAIN_DECISIONS = new Map<string, Map<string, string>>();

function plainDecision(action: string, reason: string): string {
  let byReason = PLAIN_DECISIONS.get(action);
  if (byReason === undefined) PLAIN_DECISIONS.set(action, (byReason = new Map()));
  let value = byReason.get(reason);
  if (value === undefined) byReason.set(reason, (value = `${action}; reason=${reason}`));
  return value;
}

function errorList(errors: readonly ErrorEntry[]): string {
  // Two endpoints of one backend failing the same way say the same thing once.
  return [...new Set(errors.map((e) => `${headerToken(e.backend)}:${e.kind}${e.decision === undefined ? '' : `:${e.decision}`}`))].join(',');
}

/** One blocked threat as the §B headers report it. */
export interface Violation {
  /** Sanitized; for a multipart part it reads `<threat> (in <part>)`. */
  readonly threat: string;
  /** Sanitized file name, or the part label. */
  readonly fileName: string;
  /** The bare threat name for X-Virus-ID; `threat` when absent. */
  readonly name?: string;
}

/**
 * The extension headers for a blocked infected object (icap-extensions.md §B): distinct
 * violations (at least one), each with its own sanitized threat and file name.
 */
export function violationHeaders(violations: readonly Violation[]): HeaderList {
  const headers: HeaderList = [];
  // §B: exactly Type, Resolution, Threat in this order; the final `;` ends the threat text.
  // Type=0 virus; Resolution=2 blocked (we send a block page, never the content).
  for (const v of violations) {
    headers.push(['X-Infection-Found', `Type=0; Resolution=2; Threat=${v.threat};`]);
  }
  // §B: a count, then per violation four continuation lines: file name, threat, problem id, resolution.
  let text = String(violations.length);
  for (const v of violations) {
    text += `\r\n\t${v.fileName}\r\n\t${v.threat}\r\n\t0\r\n\t2`;
  }
  headers.push(['X-Violations-Found', text]);
  // §B: X-Virus-ID is a one-line alternative for clients that read only that.
  const first = violations[0];
  if (first !== undefined) headers.push(['X-Virus-ID', first.name ?? first.threat]);
  return headers;
}
