/**
 * One URL spelled many ways is one URL. Lists and rules compare URLs in the forms below, and list
 * and rule entries are brought into the same forms, so `/%73ecret/`, `/x/../secret/` and
 * `HTTP://User@Host.:80/secret/` all meet an entry `http://host/secret/`.
 *
 *   canonical   RFC 3986 §6.2.2–6.2.3: scheme and host lower-cased; userinfo dropped; the
 *               scheme's default port dropped; a trailing dot of the host dropped; IPv4 in any
 *               WHATWG spelling (`3221226247`, `0xc0.0.2.7`) as dotted decimal, IPv6 compressed,
 *               IPv4-mapped IPv6 as the IPv4 address; `%XX` of unreserved characters decoded and
 *               other `%xx` upper-cased; dot segments removed (after decoding, so `%2e%2e` too);
 *               an empty path is `/`; the fragment dropped. `%2F` stays encoded: RFC 3986 makes
 *               `a%2Fb` one segment, and Apache (AllowEncodedSlashes Off), Tomcat and most
 *               routers keep it apart from `a/b`.
 *   loose       what the laxest common origin serves for it: every `%XX` decoded (nginx decodes
 *               `%2F` too), `\` read as `/` (IIS, WHATWG), `;params` cut from each segment
 *               (Tomcat), runs of `/` merged (nginx merge_slashes), dot segments removed, all
 *               lower-cased (case-insensitive file systems).
 *
 * Deny lists match when ANY form matches (a server may read the URL either way); allow lists
 * only when EVERY form matches, so `/public/..%2Fa.exe` is not allowed by `http://h/public/`.
 * Rules, which do not know which way they lean, compare the canonical form.
 */
import type { Glob } from './glob.js';
import { compileGlob } from './glob.js';

/** One reading of a URL, split where patterns need it. `origin` is '' when the URL had no authority. */
interface UrlReading {
  readonly origin: string;
  readonly path: string;
  /** `?...`, or '' when there is none. */
  readonly query: string;
}

export interface UrlForms {
  readonly canonical: UrlReading;
  readonly loose: UrlReading;
}

export type MatchMode = 'deny' | 'allow' | 'rule';

export interface UrlPattern {
  /** The entry as normalized (what hits report). */
  readonly entry: string;
  matches(forms: UrlForms, mode: MatchMode): boolean;
}

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?/s;
const ORIGIN_FORM = /^([^?#]*)(\?[^#]*)?/s;
const PCT = /%([0-9A-Fa-f]{2})/g;
/** WHATWG "ends in a number": such a host is parsed as IPv4, whatever its spelling. */
const ENDS_IN_NUMBER = /(?:^|\.)(?:\d+|0x[0-9a-f]*)$/;
const MAPPED_V4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;
const DEFAULT_PORTS: { readonly [scheme: string]: string } = { http: '80', https: '443', ws: '80', wss: '443', ftp: '21' };

/** `Example.COM.` → `example.com`; `3221226247` → `192.0.2.7`; `[2001:db8:0::1]` → `2001:db8::1`. */
export function canonicalHost(raw: string): string {
  let host = raw.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.includes(':')) {
    const v6 = whatwgHost(`[${host}]`);
    if (v6 === undefined) return host;
    const mapped = MAPPED_V4.exec(v6.slice(1, -1));
    if (!mapped) return v6.slice(1, -1);
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  // Only numbers go through the WHATWG parser: names stay as sent (no IDNA mapping), and the
  // common case costs one regex test.
  return ENDS_IN_NUMBER.test(host) ? (whatwgHost(host) ?? host) : host;
}

function whatwgHost(host: string): string | undefined {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return undefined;
  }
}

/** `user@Host.:080` → `host` for http; a non-default or non-numeric port is kept. */
function canonicalAuthority(scheme: string, authority: string): string {
  let hostPort = authority.slice(authority.lastIndexOf('@') + 1); // userinfo is not part of where the request goes
  let port = '';
  const colon = hostPort.lastIndexOf(':');
  if (colon !== -1 && colon > hostPort.lastIndexOf(']')) {
    port = hostPort.slice(colon + 1);
    hostPort = hostPort.slice(0, colon);
    if (/^\d+$/.test(port)) port = String(Number(port));
    if (port === '' || port === DEFAULT_PORTS[scheme]) port = '';
  }
  const host = canonicalHost(hostPort);
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return port === '' ? bracketed : `${bracketed}:${port}`;
}

function decodeUnreserved(_match: string, hex: string): string {
  const c = parseInt(hex, 16);
  const unreserved = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
  return unreserved ? String.fromCharCode(c) : `%${hex.toUpperCase()}`;
}

function decodeAll(_match: string, hex: string): string {
  return String.fromCharCode(parseInt(hex, 16));
}

/** RFC 3986 §6.2.2.1–2: `%73` → `s`, `%2f` → `%2F`. */
function normalizePercent(text: string): string {
  return text.includes('%') ? text.replace(PCT, decodeUnreserved) : text;
}

/** RFC 3986 §5.2.4 for an absolute path: `/a/../b/./c` → `/b/c`; `/a/..` → `/`. */
function removeDotSegments(path: string): string {
  if (!/(?:^|\/)\.\.?(?:\/|$)/.test(path)) return path;
  const segments = path.split('/');
  const out: string[] = [];
  segments.forEach((segment, i) => {
    if (segment === '.' || segment === '..') {
      if (segment === '..' && out.length > 1) out.pop();
      if (i === segments.length - 1) out.push(''); // `/a/b/..` ends in a slash: `/a/`
    } else {
      out.push(segment);
    }
  });
  const joined = out.join('/');
  return joined.startsWith('/') ? joined : `/${joined}`;
}

function canonicalPath(path: string): string {
  const clean = removeDotSegments(normalizePercent(path));
  return clean === '' ? '/' : clean;
}

function loosePath(rawPath: string): string {
  let p = rawPath.includes('%') ? rawPath.replace(PCT, decodeAll) : rawPath;
  p = p.replace(/\\/g, '/').replace(/;[^/]*/g, '').replace(/\/{2,}/g, '/');
  p = removeDotSegments(p);
  return (p === '' ? '/' : p).toLowerCase();
}

/** The canonical string of an absolute URL (list entries), or undefined when `url` has no `scheme://host`. */
export function canonicalUrl(url: string): string | undefined {
  const m = ABSOLUTE.exec(url);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  const authority = canonicalAuthority(scheme, m[2]!);
  if (authority === '') return undefined;
  return `${scheme}://${authority}${canonicalPath(m[3]!)}${normalizePercent(m[4] ?? '')}`;
}

let memo: { url: string; forms: UrlForms } | undefined; // lists and each url rule ask for the same request's forms

/** Both readings of a request's URL (absolute, origin-form, or a CONNECT authority). */
export function urlForms(url: string): UrlForms {
  if (memo?.url === url) return memo.forms;
  let forms: UrlForms;
  const m = ABSOLUTE.exec(url);
  if (m) {
    const scheme = m[1]!.toLowerCase();
    const origin = `${scheme}://${canonicalAuthority(scheme, m[2]!)}`;
    const query = normalizePercent(m[4] ?? '');
    forms = {
      canonical: { origin, path: canonicalPath(m[3]!), query },
      loose: { origin, path: loosePath(m[3]!), query: query.toLowerCase() },
    };
  } else if (url.startsWith('/')) {
    const o = ORIGIN_FORM.exec(url)!;
    const query = normalizePercent(o[2] ?? '');
    forms = {
      canonical: { origin: '', path: canonicalPath(o[1]!), query },
      loose: { origin: '', path: loosePath(o[1]!), query: query.toLowerCase() },
    };
  } else {
    const reading = { origin: url.toLowerCase(), path: '', query: '' };
    forms = { canonical: reading, loose: reading };
  }
  memo = { url, forms };
  return forms;
}

/**
 * A URL glob with its scheme and host part lower-cased (compared case-insensitively) and its
 * `%XX` normalized like URLs. The host part is what follows `scheme://` up to the next `/`, or
 * in a glob without a scheme whatever precedes the first `/` (`*.BadCorp.example/*`).
 */
export function normalizeUrlGlob(glob: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s.exec(glob);
  if (m) {
    const scheme = m[1]!.toLowerCase();
    const authority = m[2]!.includes('*') ? globAuthority(scheme, m[2]!) : canonicalAuthority(scheme, m[2]!);
    const rest = m[3]!;
    // No path: the whole host (`http://*.example.com` reads `http://*.example.com/`, whose `*`
    // then cannot run on into a path or query).
    return `${scheme}://${authority}${rest === '' ? '/' : normalizePercent(rest)}`;
  }
  const slash = glob.indexOf('/');
  return slash > 0 ? `${glob.slice(0, slash).toLowerCase()}${normalizePercent(glob.slice(slash))}` : normalizePercent(glob);
}

function globAuthority(scheme: string, authority: string): string {
  const a = authority.toLowerCase();
  const port = /:(\d*)$/.exec(a);
  const host = port && (port[1] === '' || String(Number(port[1])) === DEFAULT_PORTS[scheme]) ? a.slice(0, port.index) : a;
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

type Side = (reading: UrlReading, withQuery: boolean) => boolean;

/**
 * A list or rule entry → a pattern over UrlForms. Without `*`, a list entry is a prefix
 * (`prefix: true`) and a rule entry the exact URL; both are canonical URLs, whose path starts
 * with `/`, so `http://good.example` (read `http://good.example/`) never reaches
 * `http://good.example.evil.test/`. With `*`, a glob: when it names `scheme://host/`, the host
 * part is matched against the URL's origin alone, so its `*` cannot run into the path.
 *
 * A glob without `?` is matched against the URL without its query (`*.scr` is about the path,
 * and `/a.exe?.scr` is not a .scr); deny lists and rules also try the whole URL, the README's
 * "whole URL" reading, so `*.scr` denies both `/a.scr?x=1` and `/x?f=a.scr`.
 */
export function compileUrlPattern(raw: string, opts: { prefix: boolean }): UrlPattern {
  const isGlob = raw.includes('*');
  const absolute = !isGlob ? canonicalUrl(raw) : undefined;
  const entry = absolute ?? normalizeUrlGlob(raw);
  const hasQuery = entry.includes('?');
  const pathOnly = isGlob && !hasQuery; // worth trying without the query
  const prefix = !isGlob && opts.prefix && absolute !== undefined;
  const canonical = compileSide(entry, prefix, false);
  const loose = compileSide(entry, prefix, true);
  // An allow glob without a scheme (`*.example.com/*`) names a host and a path: matched against
  // the whole URL, its leading `*` would also take `http://evil.test/x.example.com/a.exe`. So for
  // allow lists the part before its first `/` is matched against the origin alone (as a glob with
  // `scheme://` is); deny lists keep the whole-URL reading, which denies more, never less.
  const bare = isGlob && !/^[a-z][a-z0-9+.-]*:\/\//.test(entry) ? /^([^/]+)(\/.*)$/s.exec(entry) : null;
  const allowCanonical = bare ? compileSide(`*://${bare[1]!}${bare[2]!}`, false, false) : canonical;
  const allowLoose = bare ? compileSide(`*://${bare[1]!}${bare[2]!}`, false, true) : loose;
  return {
    entry,
    matches(forms, mode) {
      switch (mode) {
        case 'allow': // every reading; a glob without `?` on the path alone
          return allowCanonical(forms.canonical, !pathOnly) && allowLoose(forms.loose, !pathOnly);
        case 'deny': // any reading, with or without the query
          return (
            canonical(forms.canonical, true) ||
            loose(forms.loose, true) ||
            (pathOnly && (canonical(forms.canonical, false) || loose(forms.loose, false)))
          );
        case 'rule':
          return canonical(forms.canonical, true) || (pathOnly && canonical(forms.canonical, false));
      }
    },
  };
}

function compileSide(entry: string, prefix: boolean, lax: boolean): Side {
  const m = /^((?:[a-z][a-z0-9+.-]*|\*):\/\/[^/?#]*)(.*)$/s.exec(entry);
  const looseRest = (rest: string): string => (lax ? rest.replace(PCT, decodeAll).replace(/\\/g, '/').replace(/\/{2,}/g, '/').toLowerCase() : rest);
  const text = (r: UrlReading, withQuery: boolean): string => r.origin + r.path + (withQuery ? r.query : '');
  if (prefix) {
    const m2 = m!; // canonical absolute URLs always split
    const rest = lax ? loosePath(m2[2]!.replace(/\?.*$/s, '')) + (/\?.*$/s.exec(m2[2]!)?.[0].toLowerCase() ?? '') : m2[2]!;
    const want = m2[1]! + rest;
    return (r) => text(r, true).startsWith(want);
  }
  if (m && m[2]!.startsWith('/')) {
    const head: Glob = compileGlob(m[1]!);
    const rest: Glob = compileGlob(looseRest(m[2]!));
    return (r, withQuery) => head.matches(r.origin) && rest.matches(r.path + (withQuery ? r.query : ''));
  }
  const whole: Glob = compileGlob(lax ? entry.replace(PCT, decodeAll).toLowerCase() : entry);
  return (r, withQuery) => whole.matches(text(r, withQuery));
}
