/**
 * Per-service policy keys: `rules` (ordered; first match wins) and `lists` (allow/deny lists of
 * SHA-256 hashes, URLs and hosts). Semantics live in src/policy; this file only says what a
 * valid value is, with messages that name the rule broken.
 *
 * List files are read and parsed here, as part of loading the configuration, so a missing file or
 * a bad line is a configuration error naming the key and the file (and line), `icap-bridge check`
 * catches it, and a SIGHUP with a broken list keeps the running configuration. The loaded entries
 * travel in the config (`{ file, entries }`); the server compiles them per generation.
 */
import * as z from 'zod';
import { readFileSync } from 'node:fs';
import { SCAN_ERROR_KINDS } from '../backends/backend.js';
import {
  cidrProblem,
  entryKindOf,
  FILE_TYPES,
  HEADER_OPERATORS,
  HEADER_SOURCES,
  hostProblem,
  LIST_KEYS,
  parseListText,
  RULE_ACTIONS,
  urlEntryProblem,
  type ListEntryKind,
} from '../policy/index.js';
import { FAILURE_ACTIONS } from '../verdict/index.js';
import { boolean, integer, list, mapping, name, oneOf, readableFile, SHOW_VALUE, strictMapping } from './rules.js';

/** At most this many bad lines of one list file are reported; the rest are counted. */
const MAX_LINE_PROBLEMS = 3;

// RFC 9110 §5.6.2 token: header names and HTTP methods.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function token(what: string) {
  const error = () => `must be ${what} (letters, digits and !#$%&'*+-.^_\`|~)`;
  return z.string({ error }).regex(TOKEN, { error });
}

function nonEmptyText(what: string) {
  const error = () => `must be a non-empty ${what}`;
  return z.string({ error }).min(1, { error });
}

/**
 * A rule's `url`: a glob with `*`, or an exact URL with a scheme and host, whose host has an
 * A-label form. Otherwise it could never match (rules compare canonical URLs, url-forms.ts), as
 * list-files.ts says of list lines.
 */
function urlRuleEntry() {
  return nonEmptyText('URL glob').superRefine((text, ctx) => {
    const problem = urlEntryProblem(text);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, params: SHOW_VALUE });
  });
}

/** A rule's `host`: a name, address or glob that can meet the A-labels requests carry (idna.ts). */
function hostRuleEntry() {
  return nonEmptyText('host glob').superRefine((text, ctx) => {
    const problem = hostProblem(text);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, params: SHOW_VALUE });
  });
}

function addressOrCidr() {
  const error = () => 'must be an IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.0/8';
  return z.string({ error }).superRefine((text, ctx) => {
    const problem = cidrProblem(text);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, params: SHOW_VALUE });
  });
}

/** `block`, `allow`, or `{ timeout: allow, too-large: block, ... }` (kinds left out block). */
export function failurePolicySchema() {
  const action = oneOf(FAILURE_ACTIONS);
  const perKind = strictMapping(Object.fromEntries(SCAN_ERROR_KINDS.map((k) => [k, action.optional()])) as {
    [K in (typeof SCAN_ERROR_KINDS)[number]]: z.ZodOptional<typeof action>;
  });
  return z.union([action, perKind], {
    error: () => `must be block, allow, or a mapping of outcome to block|allow (outcomes: ${SCAN_ERROR_KINDS.join(', ')}; unlisted ones block)`,
  });
}

function headerCondition() {
  const operator = Object.fromEntries(HEADER_OPERATORS.map((o) => [o, z.string({ error: () => 'must be a string' }).optional()])) as {
    [O in (typeof HEADER_OPERATORS)[number]]: z.ZodOptional<z.ZodString>;
  };
  return mapping({
    name: token('a header name'),
    in: list(oneOf(HEADER_SOURCES), { nonEmpty: true, unique: true }).optional(),
    ...operator,
    case_sensitive: boolean().optional(),
  }).superRefine((h, ctx) => {
    const given = HEADER_OPERATORS.filter((o) => h[o] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `needs exactly one of ${HEADER_OPERATORS.join(', ')} (found ${given.length === 0 ? 'none' : given.join(', ')})` });
    }
  });
}

function ruleMatch() {
  const some = <T extends z.ZodType>(item: T) => list(item, { nonEmpty: true }).optional();
  return mapping({
    /** The HTTP client: X-Client-IP, or the ICAP peer when the proxy sent none. */
    client: some(addressOrCidr()),
    /** The ICAP client itself (the proxy). */
    peer: some(addressOrCidr()),
    user: some(nonEmptyText('user name or glob')),
    method: some(token('an HTTP method')),
    icap_method: some(oneOf(['REQMOD', 'RESPMOD'])),
    host: some(hostRuleEntry()),
    url: some(urlRuleEntry()),
    content_type: some(nonEmptyText('media type or glob')),
    min_size: integer(0).optional(),
    max_size: integer(0).optional(),
    file_type: some(oneOf(FILE_TYPES)),
    headers: some(headerCondition()),
    /** A 206 range or a partial PUT rather than a whole file (src/policy/byte-range.ts). */
    partial: boolean().optional(),
  }).superRefine((m, ctx) => {
    if (m.min_size !== undefined && m.max_size !== undefined && m.min_size > m.max_size) {
      ctx.addIssue({ code: 'custom', path: ['max_size'], message: `must be >= min_size (${m.min_size})` });
    }
  });
}

function rule() {
  return mapping({
    name: name('rule'),
    match: ruleMatch().optional(),
    action: oneOf(RULE_ACTIONS).default('scan'),
    backends: list(name('backend'), { nonEmpty: true, unique: true }).optional(),
    on_error: failurePolicySchema().optional(),
  }).superRefine((r, ctx) => {
    if (r.action === 'scan') return;
    for (const key of ['backends', 'on_error'] as const) {
      if (r[key] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: `only applies to action: scan (rule ${JSON.stringify(r.name)} has action: ${r.action})` });
      }
    }
  });
}

/** The ordered rules of one service; names are unique within it (they go into logs and headers). */
export function rulesSchema() {
  return list(rule()).superRefine((rules, ctx) => {
    const first = new Map<string, number>();
    rules.forEach((r, i) => {
      const previous = first.get(r.name);
      if (previous === undefined) first.set(r.name, i);
      else ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate rule name ${JSON.stringify(r.name)} (also rules[${previous}])` });
    });
  });
}

/** A list file, read and parsed now: `{ file, entries }`. */
function listFile(baseDir: string, kind: ListEntryKind) {
  return readableFile(baseDir).transform((file, ctx) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `list file ${JSON.stringify(file)} cannot be read: ${(err as Error).message}` });
      return z.NEVER;
    }
    const parsed = parseListText(text, kind);
    if (parsed.ok) return { file, entries: parsed.entries };
    for (const e of parsed.errors.slice(0, MAX_LINE_PROBLEMS)) {
      ctx.addIssue({ code: 'custom', message: `list file ${JSON.stringify(file)} line ${e.line}: ${e.message}` });
    }
    const more = parsed.errors.length - MAX_LINE_PROBLEMS;
    if (more > 0) ctx.addIssue({ code: 'custom', message: `list file ${JSON.stringify(file)}: ${more} more invalid line(s)` });
    return z.NEVER;
  });
}

export function listsSchema(baseDir: string) {
  const shape = Object.fromEntries(LIST_KEYS.map((key) => [key, list(listFile(baseDir, entryKindOf(key))).default([])])) as {
    [K in (typeof LIST_KEYS)[number]]: z.ZodDefault<ReturnType<typeof list<ReturnType<typeof listFile>>>>;
  };
  return mapping(shape);
}
