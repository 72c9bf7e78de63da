/**
 * What an upstream ICAP service says about itself in its OPTIONS answer (RFC 3507 §4.10.2):
 * the methods it serves, the preview it wants, whether it may answer 204, which file types it
 * wants previewed, sent whole or not at all, its ISTag, a connection cap, and how long all of
 * that stays valid.
 */
import type { IcapResponseHead } from '../../../protocol/index.js';

export interface UpstreamOptions {
  /** Upper-case method names; null when the answer did not say (then we assume both). */
  readonly methods: ReadonlySet<string> | null;
  /** Bytes the service wants before deciding; null = no preview. */
  readonly preview: number | null;
  readonly allow204: boolean;
  /** File extensions, lower case, without the dot; '*' stands for every other extension. */
  readonly transferPreview: readonly string[];
  readonly transferIgnore: readonly string[];
  readonly transferComplete: readonly string[];
  /** Quoted, as sent; null when missing (§4.10.2 makes it mandatory, not everyone agrees). */
  readonly istag: string | null;
  /** Connections the service accepts from us; null = no limit given. */
  readonly maxConnections: number | null;
  /** How long this answer is valid; null = no Options-TTL, valid until the next health check. */
  readonly ttlMs: number | null;
  /** The Service header, for logs. */
  readonly service: string | null;
}

export type TransferMode = 'preview' | 'complete' | 'ignore';

const DIGITS = /^\d{1,10}$/;

function count(value: string | undefined): number | null {
  return value !== undefined && DIGITS.test(value.trim()) ? Number(value.trim()) : null;
}

function extensions(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((e) => e.trim().toLowerCase().replace(/^\./, ''))
    .filter((e) => e !== '');
}

/** An OPTIONS answer → options, or why it cannot be used. */
export function parseOptionsAnswer(head: IcapResponseHead): { ok: true; options: UpstreamOptions } | { ok: false; reason: string } {
  if (head.status !== 200) return { ok: false, reason: `OPTIONS answered ${head.status} ${head.reason}`.trim() };
  const h = head.headers;
  const methods = h.has('Methods') ? new Set([...h.tokens('Methods')].map((m) => m.toUpperCase())) : null;
  const ttl = count(h.get('Options-TTL'));
  const maxConnections = count(h.get('Max-Connections'));
  return {
    ok: true,
    options: {
      methods,
      preview: count(h.get('Preview')),
      allow204: h.tokens('Allow').has('204'),
      transferPreview: extensions(h.get('Transfer-Preview')),
      transferIgnore: extensions(h.get('Transfer-Ignore')),
      transferComplete: extensions(h.get('Transfer-Complete')),
      istag: h.get('ISTag') ?? null,
      maxConnections: maxConnections !== null && maxConnections > 0 ? maxConnections : null,
      ttlMs: ttl === null ? null : ttl * 1000,
      service: h.get('Service') ?? null,
    },
  };
}

/** The file extension of a URL's last path segment, lower case, '' when there is none. */
export function urlExtension(url: string | undefined): string {
  if (url === undefined) return '';
  const path = url.replace(/[?#].*$/s, '');
  const segment = path.slice(path.lastIndexOf('/') + 1);
  const dot = segment.lastIndexOf('.');
  return dot <= 0 || dot === segment.length - 1 ? '' : segment.slice(dot + 1).toLowerCase();
}

/**
 * §4.10.2: an extension named in Transfer-Complete is sent whole without preview, one in
 * Transfer-Ignore is not sent at all, one in Transfer-Preview gets the preview; the list holding
 * `*` covers every extension the others do not name. With no list matching, preview.
 */
export function transferMode(options: UpstreamOptions, extension: string): TransferMode {
  if (extension !== '') {
    if (options.transferComplete.includes(extension)) return 'complete';
    if (options.transferIgnore.includes(extension)) return 'ignore';
    if (options.transferPreview.includes(extension)) return 'preview';
  }
  if (options.transferComplete.includes('*')) return 'complete';
  if (options.transferIgnore.includes('*')) return 'ignore';
  return 'preview';
}

/** The preview to send: the service's, lowered (never raised) by the config override; null = none. */
export function previewSize(options: UpstreamOptions, mode: TransferMode, override: number | undefined): number | null {
  if (mode !== 'preview' || options.preview === null) return null;
  return override === undefined ? options.preview : Math.min(override, options.preview);
}
