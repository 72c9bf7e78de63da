/**
 * The URL and host of the encapsulated HTTP request as logs and backends see them: scheme and
 * authority lower-cased (RFC 3986 §6.2.2.1: they are case-insensitive), the path and query kept
 * as sent. What lists and rules compare is derived from these in url-forms.ts (canonical forms).
 */
import { canonicalHost } from './url-forms.js';

const WITH_AUTHORITY = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s;

/** Lower-cases the scheme and authority of `scheme://authority/...`; anything else is returned as is. */
function normalizeUrl(url: string): string {
  const m = WITH_AUTHORITY.exec(url);
  return m ? `${m[1]!.toLowerCase()}://${m[2]!.toLowerCase()}${m[3]!}` : url;
}

/**
 * The request target as an absolute URL: proxies send absolute-form (`GET http://h/p`);
 * origin-form (`GET /p`, interception) gets `http://` + Host; authority-form (CONNECT h:443) is
 * returned lower-cased.
 */
export function effectiveUrl(target: string, hostHeader: string | undefined): string {
  if (target.startsWith('/')) {
    return hostHeader !== undefined && hostHeader.trim() !== '' ? normalizeUrl(`http://${hostHeader.trim()}${target}`) : target;
  }
  // authority-form is all authority: case-insensitive throughout.
  return WITH_AUTHORITY.test(target) ? normalizeUrl(target) : target.toLowerCase();
}

/**
 * `Example.COM:8080` → `example.com`; `[2001:db8:0::1]:443` → `2001:db8::1`; a trailing dot is
 * dropped; IPv4 in any spelling is dotted decimal (canonicalHost).
 */
export function hostOnly(authority: string): string {
  let host = authority.trim().toLowerCase();
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
  if (hostHeader !== undefined && hostHeader.trim() !== '') return hostOnly(hostHeader);
  if (target === undefined) return undefined;
  const m = WITH_AUTHORITY.exec(target);
  if (m) return hostOnly(m[2]!);
  return target.startsWith('/') ? undefined : hostOnly(target); // CONNECT host:port
}
