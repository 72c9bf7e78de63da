/**
 * clamd endpoint strings, shared by the config schema (validation) and the backend (connecting):
 * `host:port`, `[v6]:port`, or an absolute UNIX socket path (clamd `TCPSocket` / `LocalSocket`).
 */
import { isIP } from 'node:net';

export type ClamdAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly label: string }
  | { readonly kind: 'unix'; readonly path: string; readonly label: string };

export const ENDPOINT_RULE = 'must be "host:port", "[IPv6]:port" or an absolute UNIX socket path';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const PORT = /^[0-9]{1,5}$/;

/** The address, or a reason the text is not one. */
export function parseClamdEndpoint(text: string): { ok: true; address: ClamdAddress } | { ok: false; reason: string } {
  if (text.startsWith('/')) {
    // sun_path holds 108 bytes including the NUL on Linux.
    if (Buffer.byteLength(text) > 107) return { ok: false, reason: 'UNIX socket path longer than 107 bytes' };
    return { ok: true, address: { kind: 'unix', path: text, label: text } };
  }
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']:');
    if (close === -1) return { ok: false, reason: ENDPOINT_RULE };
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6) return { ok: false, reason: `"${host}" is not an IPv6 address` };
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return { ok: false, reason: `${ENDPOINT_RULE} (no port)` };
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return { ok: false, reason: 'an IPv6 address must be written in brackets: "[::1]:3310"' };
    if (isIP(host) === 0 && !HOSTNAME.test(host)) return { ok: false, reason: `"${host}" is not an IP address or a host name` };
  }
  const port = PORT.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return { ok: false, reason: 'port must be an integer between 1 and 65535' };
  return { ok: true, address: { kind: 'tcp', host, port, label: text } };
}
