/**
 * An upstream ICAP endpoint: `icap://host[:port]/service[?query]` or `icaps://…` (ICAP over TLS).
 * RFC 3507 §4.2: the ICAP URI is `icap://` authority path; port 1344 by default. For icaps the
 * usual port is 11344 (Squid's and c-icap's default for TLS).
 */
import { isIPv6 } from 'node:net';

export const ICAP_DEFAULT_PORT = 1344;
export const ICAPS_DEFAULT_PORT = 11344;

export interface IcapUrl {
  /** The endpoint text as written. */
  readonly text: string;
  readonly secure: boolean;
  /** Host name or IP literal; an IPv6 literal without brackets. */
  readonly host: string;
  readonly port: number;
  /** `/service?query`, as sent in the request line. */
  readonly path: string;
}

export type ParsedIcapUrl = { readonly ok: true; readonly url: IcapUrl } | { readonly ok: false; readonly reason: string };

const RULE = 'must be an icap:// or icaps:// URL with a service path, e.g. "icap://av-1:1344/avscan"';

export function parseIcapUrl(text: string): ParsedIcapUrl {
  const scheme = /^(icaps?):\/\//i.exec(text);
  if (scheme === null) return { ok: false, reason: RULE };
  const secure = scheme[1]!.toLowerCase() === 'icaps';
  let url: URL;
  try {
    // WHATWG URL parses authority and path of a non-special scheme the same way once it is http-like.
    url = new URL(`http://${text.slice(scheme[0].length)}`);
  } catch {
    return { ok: false, reason: RULE };
  }
  if (url.username !== '' || url.password !== '') return { ok: false, reason: 'must not carry a user name or password' };
  if (url.hash !== '') return { ok: false, reason: 'must not have a #fragment' };
  const path = `${url.pathname}${url.search}`;
  if (url.pathname === '/' || url.pathname === '') return { ok: false, reason: `${RULE} (the service path is missing)` };
  if (/[\s\0]/.test(text)) return { ok: false, reason: 'must not contain spaces or control characters' };
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  // new URL('http://h:80/') drops the default HTTP port; ICAP's default is different, so read it back.
  const explicitPort = /^[^/?#]*:(\d+)(?:[/?#]|$)/.exec(text.slice(scheme[0].length).replace(/^\[[^\]]*\]/, ''));
  const port = explicitPort !== null ? Number(explicitPort[1]) : secure ? ICAPS_DEFAULT_PORT : ICAP_DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, reason: 'port must be 1-65535' };
  return { ok: true, url: { text, secure, host, port, path } };
}

/** `host:port` for the Host header and the request URI (brackets around IPv6). */
export function authority(host: string, port: number): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** The request-line URI for `url` when talking to `host` (the configured name, even when pinned to an address). */
export function requestUri(url: IcapUrl, host = url.host): string {
  return `${url.secure ? 'icaps' : 'icap'}://${authority(host, url.port)}${url.path}`;
}
