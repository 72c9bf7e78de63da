/**
 * The URL and host of the encapsulated HTTP request as logs and backends see them: scheme and
 * authority lower-cased (RFC 3986 §6.2.2.1: they are case-insensitive), the path and query kept
 * as sent. What lists and rules compare is derived from these in url-forms.ts (canonical forms).
 *
 * These are latin1 byte strings from the head. Only their ASCII letters are lower-cased:
 * toLowerCase() would also fold the bytes 0xC0–0xDE, which in UTF-8 are lead bytes (`ü` is C3 BC,
 * and C3 would become E3). The host is read as text (headText) and brought to its A-labels
 * (canonicalHost, RFC 5890 §2.3.2.1), so a raw UTF-8 Host meets the `xn--` form browsers send.
 */
import { headText, isAscii, trimOws } from '../../protocol/index.js';
import { canonicalHost } from './url-forms.js';

const WITH_AUTHORITY = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s;

/** ASCII letters lower-cased, every other byte kept. */
function lowerAscii(bytes: string): string {
  return isAscii(bytes) ? bytes.toLowerCase() : bytes.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/** Lower-cases the scheme and authority of `scheme://authority/...`; anything else is returned as is. */
function normalizeUrl(url: string): string {
  const m = WITH_AUTHORITY.exec(url);
  return m ? `${m[1]!.toLowerCase()}://${lowerAscii(m[2]!)}${m[3]!}` : url;
}

/**
 * The request target as an absolute URL: proxies send absolute-form (`GET http://h/p`);
 * origin-form (`GET /p`, interception) gets `http://` + Host; authority-form (CONNECT h:443) is
 * returned lower-cased.
 */
export function effectiveUrl(target: string, hostHeader: string | undefined): string {
  if (target.startsWith('/')) {
    const host = hostHeader === undefined ? '' : trimOws(hostHeader);
    return host !== '' ? normalizeUrl(`http://${host}${target}`) : target;
  }
  // authority-form is all authority: case-insensitive throughout.
  return WITH_AUTHORITY.test(target) ? normalizeUrl(target) : lowerAscii(target);
}

/**
 * `Example.COM:8080` → `example.com`; `[2001:db8:0::1]:443` → `2001:db8::1`; a trailing dot is
 * dropped; IPv4 in any spelling is dotted decimal; `bücher.example` (UTF-8 bytes) is
 * `xn--bcher-kva.example` (canonicalHost). Bytes that are not UTF-8 stay `%XX` (headText), so they
 * never pass for a name they are not.
 */
export function hostOnly(authority: string): string {
  // RFC 9110 §5.5: OWS is SP and HTAB; trim() would also cut a byte 0xA0 ending a UTF-8 character.
  let host = headText(trimOws(authority)).toLowerCase();
  const at = host.lastIndexOf('@');
  if (at !== -1) host = host.slice(at + 1); // userinfo
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end === -1 ? host.slice(1) : host.slice(1, end);
  } else {
    host = host.replace(/:\d*$/, '');
  }
  return canonicalHost(host);
}

/** The host a request is for: the Host header, else the URL's authority (or a CONNECT target). */
export function requestHost(target: string | undefined, hostHeader: string | undefined): string | undefined {
  if (hostHeader !== undefined && trimOws(hostHeader) !== '') return hostOnly(hostHeader);
  if (target === undefined) return undefined;
  const m = WITH_AUTHORITY.exec(target);
  if (m) return hostOnly(m[2]!);
  return target.startsWith('/') ? undefined : hostOnly(target); // CONNECT host:port
}
