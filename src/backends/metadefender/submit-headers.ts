/**
 * The headers of `POST /file` (specs/metadefender-core-api.md §2) built from what the transaction
 * knows. Every value ends up in an HTTP header, so each is made header-safe here: `filename` and
 * `rule` percent-encoded (as OPSWAT's own integrations do), `metadata` as JSON with every
 * non-ASCII character escaped.
 */
import type { ScanMeta } from '../backend.js';
import { fileNameFromDisposition } from './core-endpoint.js';

export const USER_AGENT = 'icap-bridge';

/**
 * ScanMeta may one day carry the encapsulated message's Content-Disposition; this reads it when
 * present (structurally, so no change to the shared interface is needed until then).
 */
export type SubmitMeta = ScanMeta & { readonly contentDisposition?: string };

export interface SubmitHeaderOptions {
  readonly rule: string;
}

export function submitHeaders(meta: SubmitMeta, options: SubmitHeaderOptions): Record<string, string> {
  const headers: Record<string, string> = {
    metadata: metadataHeader(meta),
  };
  const name = fileNameFor(meta);
  if (name !== undefined) headers['filename'] = encodeURIComponent(name);
  if (options.rule !== '') headers['rule'] = encodeURIComponent(options.rule);
  return headers;
}

/**
 * The name Core records (`file_info.display_name`): Content-Disposition's file name when the meta
 * carries one, else the last non-empty segment of the request URL's path, percent-decoded.
 */
export function fileNameFor(meta: SubmitMeta): string | undefined {
  const fromDisposition = baseName(fileNameFromDisposition(meta.contentDisposition));
  if (fromDisposition) return fromDisposition;
  if (meta.url === undefined) return undefined;
  return baseName(lastPathSegment(meta.url));
}

/** §2: a JSON object in the header value, echoed by Core into the result: our correlation ids. */
export function metadataHeader(meta: ScanMeta, extra: Readonly<Record<string, string | number>> = {}): string {
  const json = JSON.stringify({ icap_client: meta.clientAddress, req_id: meta.transactionId, ...extra });
  // JSON.stringify escapes control characters; escape the rest of non-ASCII so the header stays ASCII.
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function lastPathSegment(url: string): string | undefined {
  const cut = url.search(/[?#]/);
  const path = (cut === -1 ? url : url.slice(0, cut)).replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '');
  if (!path.startsWith('/')) return undefined;
  const last = path.split('/').filter((s) => s !== '').pop();
  if (last === undefined) return undefined;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** No directories, no controls: a name, or undefined. */
export function baseName(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const base = name.split(/[\\/]/).pop()!.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return base === '' || base === '.' || base === '..' ? undefined : base;
}
