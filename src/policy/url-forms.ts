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
 *               `%2F` too), and decoded again while that changes it, up to 3 rounds (RFC 3986
 *               §2.4 forbids decoding twice; IIS did, CVE-2001-0333, and so does an application
 *               that decodes behind a decoding server), so `%252e%252e` is `..` and `%2573` is
 *               `s`; `\` read as `/` (IIS, WHATWG), `;params` cut from each segment (Tomcat), runs
 *               of `/` merged (nginx merge_slashes), dot segments removed, all lower-cased
 *               (case-insensitive file systems).
 *
 * Deny lists match when ANY form matches (a server may read the URL either way); allow lists
 * only when EVERY form matches, so `/public/..%2Fa.exe` is not allowed by `http://h/public/`.
 * Rules read as lists do by their action: a block rule as a deny list, an allow rule as an allow
 * list; a scan rule, which leans neither way, compares the canonical form (conditions.ts).
 *
 * Non-ASCII: a request's head is latin1 bytes, an entry is text. An entry's host is brought to
 * its A-labels (idna.ts) and the rest of it to the `%XX` of its UTF-8 (RFC 3987 §3.1, how an IRI
 * becomes a URI); a request's raw bytes from 0x80 up become their `%XX` (RFC 3986 §2.1: they
 * are not allowed as they are; WHATWG percent-encodes them too), and a raw UTF-8 host its A-labels.
 */
import { headText, isAscii } from '../../protocol/index.js';
import type { Glob } from './glob.js';
import { compileGlob, compileGlobPieces } from './glob.js';
import { asciiHost, hostProblem } from './idna.js';

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
const NON_ASCII_RUNS = /[^\x00-\x7f]+/g;
/** No latin1 byte string holds such a character: the string is text (protocol/head-text.ts). */
const ABOVE_LATIN1 = /[^\x00-\xff]/;
/** Rounds of the loose reading's decoding: each is linear, and `%2525…` must not make it quadratic. */
const LOOSE_DECODE_ROUNDS = 3;
/** WHATWG "ends in a number": such a host is parsed as IPv4, whatever its spelling. */
const ENDS_IN_NUMBER = /(?:^|\.)(?:\d+|0x[0-9a-f]*)$/;
const MAPPED_V4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;
const DEFAULT_PORTS: { readonly [scheme: string]: string } = { http: '80', https: '443', ws: '80', wss: '443', ftp: '21' };

/**
 * `Example.COM.` → `example.com`; `3221226247` → `192.0.2.7`; `[2001:db8:0::1]` → `2001:db8::1`;
 * `bücher.example` → `xn--bcher-kva.example`. `raw` is text (an entry, or a request's host after
 * headText): globs too, label by label.
 */
export function canonicalHost(raw: string): string {
  let host = raw.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  host = asciiHost(host); // RFC 5890 §2.3.2.1: requests carry A-labels
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
  // Only numbers go through the WHATWG parser: ASCII names stay as sent, and the common case
  // costs one regex test.
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

/** The loose reading's decoding: `%XX` to bytes, again while that changes something (see top). */
function decodeRepeatedly(text: string): string {
  let s = text;
  for (let round = 0; round < LOOSE_DECODE_ROUNDS && s.includes('%'); round++) {
    const next = s.replace(PCT, decodeAll);
    if (next === s) break;
    s = next;
  }
  return s;
}

/** An entry's non-ASCII text → `%XX` of its UTF-8 (RFC 3987 §3.1 step 2): `/Büro` → `/B%C3%BCro`. */
function encodeText(text: string): string {
  return isAscii(text) ? text : text.replace(NON_ASCII_RUNS, (run) => percentBytes(Buffer.from(run, 'utf8')));
}

/** A request's raw bytes from 0x80 up → `%XX` (RFC 3986 §2.1). A string that is already text gives its UTF-8. */
function encodeBytes(bytes: string): string {
  if (isAscii(bytes)) return bytes;
  const encoding = ABOVE_LATIN1.test(bytes) ? 'utf8' : 'latin1'; // as headBytes decides, once for the whole URL
  return bytes.replace(NON_ASCII_RUNS, (run) => percentBytes(Buffer.from(run, encoding)));
}

function percentBytes(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
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
  let p = decodeRepeatedly(rawPath);
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
  return `${scheme}://${authority}${canonicalPath(encodeText(m[3]!))}${normalizePercent(encodeText(m[4] ?? ''))}`;
}

let memo: { url: string; forms: UrlForms } | undefined; // lists and each url rule ask for the same request's forms

/** Both readings of a request's URL (absolute, origin-form, or a CONNECT authority). */
export function urlForms(url: string): UrlForms {
  if (memo?.url === url) return memo.forms;
  let forms: UrlForms;
  const m = ABSOLUTE.exec(url);
  if (m) {
    const scheme = m[1]!.toLowerCase();
    const origin = `${scheme}://${canonicalAuthority(scheme, headText(m[2]!))}`;
    const query = normalizePercent(encodeBytes(m[4] ?? ''));
    const path = encodeBytes(m[3]!);
    forms = {
      canonical: { origin, path: canonicalPath(path), query },
      loose: { origin, path: loosePath(path), query: query.toLowerCase() },
    };
  } else if (url.startsWith('/')) {
    const o = ORIGIN_FORM.exec(url)!;
    const query = normalizePercent(encodeBytes(o[2] ?? ''));
    const path = encodeBytes(o[1]!);
    forms = {
      canonical: { origin: '', path: canonicalPath(path), query },
      loose: { origin: '', path: loosePath(path), query: query.toLowerCase() },
    };
  } else {
    // authority-form (CONNECT host:port): its host canonical as every other (A-labels, IPv4 dotted,
    // no trailing dot), its port kept (no scheme gives a default). toLowerCase() on the bytes would
    // fold a UTF-8 lead byte (0xC3 → 0xE3) and leave `bücher` a name no entry spells.
    const reading = { origin: canonicalAuthority('', headText(url)), path: '', query: '' };
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
    return `${scheme}://${authority}${rest === '' ? '/' : normalizePercent(encodeText(rest))}`;
  }
  const slash = glob.indexOf('/');
  return slash > 0
    ? `${asciiHost(glob.slice(0, slash).toLowerCase())}${normalizePercent(encodeText(glob.slice(slash)))}`
    : normalizePercent(encodeText(glob));
}

function globAuthority(scheme: string, authority: string): string {
  const a = authority.toLowerCase();
  const port = /:(\d*)$/.exec(a);
  const keepPort = port !== null && port[1] !== '' && String(Number(port[1])) !== DEFAULT_PORTS[scheme];
  let host = asciiHost(port ? a.slice(0, port.index) : a);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return keepPort ? `${host}${port[0]}` : host;
}

/**
 * Why a rule's URL entry can never match, or undefined: it is neither a glob nor a URL with a
 * scheme and host, or its host has no A-label form (idna.ts hostProblem; nothing else of an entry
 * stays non-ASCII once normalized).
 */
export function urlEntryProblem(raw: string): string | undefined {
  const entry = raw.includes('*') ? normalizeUrlGlob(raw) : canonicalUrl(raw);
  if (entry === undefined) return 'must be a URL with a scheme and host (http://example.com/path) or a glob with * (*.example.com/*)';
  if (isAscii(entry)) return undefined;
  const host = /^(?:[a-z][a-z0-9+.-]*:\/\/)?([^/]*)/.exec(entry)![1]!;
  return hostProblem(host) ?? `can never match: ${JSON.stringify(host)} has no A-label form`;
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

/**
 * A glob's loose reading is decoded like the URL's, but piece by piece between its `*`s: a `%2A`
 * written in the entry decodes to a star that is text, matching only a star in the URL's loose
 * reading (sent as `*`, `%2A` or `%252A`), never a wildcard. The URL is data throughout: a star
 * decoded from it is never read as a wildcard either (glob.ts compares it as a character).
 */
function compileSide(entry: string, prefix: boolean, lax: boolean): Side {
  const m = /^((?:[a-z][a-z0-9+.-]*|\*):\/\/[^/?#]*)(.*)$/s.exec(entry);
  const looseRest = (rest: string): Glob =>
    lax ? compileGlobPieces(rest.split('*').map((piece) => decodeRepeatedly(piece).replace(/\\/g, '/').replace(/\/{2,}/g, '/').toLowerCase())) : compileGlob(rest);
  const text = (r: UrlReading, withQuery: boolean): string => r.origin + r.path + (withQuery ? r.query : '');
  if (prefix) {
    const m2 = m!; // canonical absolute URLs always split
    const rest = lax ? loosePath(m2[2]!.replace(/\?.*$/s, '')) + (/\?.*$/s.exec(m2[2]!)?.[0].toLowerCase() ?? '') : m2[2]!;
    const want = m2[1]! + rest;
    return (r) => text(r, true).startsWith(want);
  }
  if (m && m[2]!.startsWith('/')) {
    const head: Glob = compileGlob(m[1]!);
    const rest: Glob = looseRest(m[2]!);
    return (r, withQuery) => head.matches(r.origin) && rest.matches(r.path + (withQuery ? r.query : ''));
  }
  const whole: Glob = lax ? compileGlobPieces(entry.split('*').map((piece) => decodeRepeatedly(piece).toLowerCase())) : compileGlob(entry);
  return (r, withQuery) => whole.matches(text(r, withQuery));
}
