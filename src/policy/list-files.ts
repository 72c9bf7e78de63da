/**
 * The text of allow/deny list files → entries. One entry per line; blank lines and lines whose
 * first non-blank character is `#` are skipped; CRLF and a UTF-8 BOM are accepted. Any line
 * that is not a valid entry is an error naming its line, so a typo fails the load (and a reload
 * keeps the running lists) instead of silently never matching.
 *
 *   sha256  64 hex digits, case-insensitive; anything after whitespace or `:` is a note.
 *   url     a URL with a scheme, a prefix (`http://example.com/downloads/`; without a path it
 *           means the whole host, `http://example.com/`), or a glob when it holds `*`
 *           (`*.example.com/*.exe`). Stored in canonical form (url-forms.ts), so they compare
 *           with requests spelled any way; anything else (`www.example.com/`) is an error. A host
 *           in U-labels is stored in A-labels (`http://bücher.example/` as
 *           `http://xn--bcher-kva.example/`, RFC 5890), a non-ASCII path as the `%XX` of its UTF-8.
 *   host    a host name or address (`example.com`, `192.0.2.7`), or a glob (`*.example.com`:
 *           any subdomain, not example.com itself). Case-insensitive; addresses canonical; an
 *           internationalized name in A-labels (idna.ts). A name that is no valid IDN, or a glob
 *           label mixing `*` with non-ASCII (`b*ü.example`), is an error: it could never match. So is
 *           such a host in a url line (`http://b*ü.example/*`).
 */
import { canonicalHost, canonicalUrl, normalizeUrlGlob, urlEntryProblem } from './url-forms.js';

export const LIST_KEYS = ['allow_sha256', 'deny_sha256', 'allow_urls', 'deny_urls', 'allow_hosts', 'deny_hosts'] as const;
export type ListKey = (typeof LIST_KEYS)[number];
export type ListEntryKind = 'sha256' | 'url' | 'host';

export function entryKindOf(key: ListKey): ListEntryKind {
  return key.endsWith('sha256') ? 'sha256' : key.endsWith('urls') ? 'url' : 'host';
}

export interface ListLineError {
  readonly line: number;
  readonly message: string;
}

export type ParsedList = { ok: true; entries: string[] } | { ok: false; errors: ListLineError[] };

const SHA256 = /^([0-9a-fA-F]{64})(?:[\s:].*)?$/s;
const HOST = /^[a-z0-9*_.:-]+$/; // names, IPv4, IPv6 (brackets removed), globs

export function parseListText(text: string, kind: ListEntryKind): ParsedList {
  const entries: string[] = [];
  const errors: ListLineError[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const parsed = parseEntry(line, kind);
      if (typeof parsed === 'string') entries.push(parsed);
      else errors.push({ line: index + 1, message: `${parsed.problem} (got ${JSON.stringify(shorten(line))})` });
    });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, entries };
}

function parseEntry(line: string, kind: ListEntryKind): string | { problem: string } {
  switch (kind) {
    case 'sha256': {
      const m = SHA256.exec(line);
      return m ? m[1]!.toLowerCase() : { problem: 'expected a SHA-256 (64 hex digits)' };
    }
    case 'host': {
      const host = canonicalHost(line);
      return HOST.test(host) ? host : { problem: 'expected a host name, an address or a glob such as *.example.com' };
    }
    case 'url': {
      if (/\s/.test(line)) return { problem: 'expected a URL or URL glob without spaces' };
      const entry = line.includes('*') ? normalizeUrlGlob(line) : canonicalUrl(line);
      if (entry === undefined) return { problem: 'expected a URL with a scheme and host (http://example.com/path/) or a glob with * (*.example.com/*)' };
      const problem = urlEntryProblem(line); // a host with no A-label form (`http://b*ü.example/*`)
      return problem === undefined ? entry : { problem };
    }
  }
}

function shorten(line: string): string {
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}
