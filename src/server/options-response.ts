/** OPTIONS answer headers for a service (RFC 3507 §4.10.2). */
import { SERVER_NAME } from './response-headers.js';
import type { Service } from './service-registry.js';

export function buildOptionsHeaders(service: Service, maxConnections: number): [string, string][] {
  const cfg = service.config;
  const headers: [string, string][] = [
    ['Methods', [...service.methods].join(', ')],
    ['Service', `${SERVER_NAME} ${service.name}`],
    ['Service-ID', service.name],
    ['Max-Connections', String(maxConnections)],
    ['Options-TTL', String(cfg.options_ttl_s)],
  ];
  // icap-extensions.md §C: "Allow: 204, 206" or "Allow: 206" advertises Partial Content.
  const allow = [...(cfg.allow_204 ? ['204'] : []), ...(cfg.allow_206 ? ['206'] : [])];
  if (allow.length > 0) headers.push(['Allow', allow.join(', ')]);
  // Preview 0 is meaningful (headers only, then decide); the header is always sent so Squid
  // does not fall back to its own icap_preview_size.
  headers.push(['Preview', String(cfg.preview_bytes)]);
  // §4.10.2: Transfer-Preview lists file extensions to preview; "*" = all of them.
  headers.push(['Transfer-Preview', '*']);
  return headers;
}
