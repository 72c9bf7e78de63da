/**
 * Header values with parameters: `type/subtype; name=value; name="quoted"` (RFC 9110 §5.6.6) for
 * Content-Type and `disposition; name=...` for Content-Disposition (RFC 6266 §4.1, RFC 7578 §4.2),
 * and RFC 8187 extended values (`filename*=UTF-8''%E2%82%AC.txt`, which obsoleted RFC 5987).
 *
 * Lenient where real clients differ from the grammar, strict where a wrong reading would let a
 * part escape scanning:
 * - quoted-pair: only `\"` and `\\` are unescaped. Old IE sends full Windows paths in `filename`
 *   unescaped ("C:\dir\a.exe"); reading `\d` as an escape would lose the separators.
 * - Browsers percent-encode `"`, CR and LF inside names (HTML "multipart/form-data encoding
 *   algorithm"); other bytes arrive raw UTF-8. We keep names as sent, decoded as UTF-8.
 * - A parameter given twice keeps its first value.
 */

export interface ParsedHeaderValue {
  /** The part before the first `;`, trimmed and lower-cased: `multipart/form-data`, `form-data`. */
  readonly value: string;
  /** Parameter names lower-cased; values unquoted. */
  readonly params: ReadonlyMap<string, string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function parseHeaderValue(header: string): ParsedHeaderValue {
  const params = new Map<string, string>();
  let at = header.indexOf(';');
  const value = (at === -1 ? header : header.slice(0, at)).trim().toLowerCase();
  while (at !== -1 && at < header.length) {
    at++; // past ';'
    at = skipSpace(header, at);
    const eq = header.indexOf('=', at);
    const semi = header.indexOf(';', at);
    if (eq === -1 || (semi !== -1 && semi < eq)) {
      // A parameter without a value ("; foo;"): skip it.
      at = semi;
      continue;
    }
    const name = header.slice(at, eq).trim().toLowerCase();
    at = skipSpace(header, eq + 1);
    let paramValue: string;
    if (header[at] === '"') {
      const [text, end] = readQuoted(header, at + 1);
      paramValue = text;
      at = header.indexOf(';', end);
    } else {
      const end = header.indexOf(';', at);
      paramValue = (end === -1 ? header.slice(at) : header.slice(at, end)).trim();
      at = end;
    }
    if (name !== '' && TOKEN.test(name) && !params.has(name)) params.set(name, paramValue);
  }
  return { value, params };
}

function skipSpace(s: string, at: number): number {
  while (s[at] === ' ' || s[at] === '\t') at++;
  return at;
}

/** Reads a quoted-string body from `at` (after the opening quote); returns text and index past it. */
function readQuoted(s: string, at: number): [string, number] {
  let out = '';
  while (at < s.length) {
    const ch = s[at]!;
    if (ch === '"') return [out, at + 1];
    if (ch === '\\' && (s[at + 1] === '"' || s[at + 1] === '\\')) {
      out += s[at + 1];
      at += 2;
      continue;
    }
    out += ch;
    at++;
  }
  // Unterminated: take the rest, as browsers would display it.
  return [out, at];
}

/**
 * RFC 8187 §3.2.1: `ext-value = charset "'" [ language ] "'" value-chars`, charset UTF-8 or
 * ISO-8859-1 (case-insensitive). Returns null for anything else, so the caller falls back to the
 * plain parameter.
 */
export function decodeExtValue(extValue: string): string | null {
  const match = /^([A-Za-z0-9!#$%&+\-^_`{}~]+)'[A-Za-z0-9-]*'(.*)$/.exec(extValue.trim());
  if (!match) return null;
  const charset = match[1]!.toLowerCase();
  const encoding = charset === 'utf-8' ? 'utf-8' : charset === 'iso-8859-1' ? 'latin1' : null;
  if (!encoding) return null;
  const bytes: number[] = [];
  const chars = match[2]!;
  for (let i = 0; i < chars.length; i++) {
    const ch = chars.charCodeAt(i);
    if (ch === 0x25 /* % */) {
      const hex = chars.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (ch < 0x80) {
      bytes.push(ch);
    } else {
      return null; // value-chars are ASCII only
    }
  }
  return Buffer.from(bytes).toString(encoding);
}
