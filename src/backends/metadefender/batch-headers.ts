/**
 * Headers of the batch calls (specs/metadefender-core-api.md §7): the open call and each file
 * added with `batch: <id>`. Header-safe like submit-headers.ts: names and rules percent-encoded,
 * JSON with non-ASCII escaped. `user_agent` and `apikey` go with every call (core-endpoint.ts).
 */
import type { ScanMeta, ScanPart } from '../backend.js';
import { baseName, metadataHeader } from './submit-headers.js';

/** §7: `user-data` is at most 1024 bytes. */
export const MAX_USER_DATA_BYTES = 1024;

/** `POST /file/batch`: the rule, and our correlation ids as `user-data` (Core echoes it in the status). */
export function batchOpenHeaders(meta: ScanMeta, options: { readonly rule: string }): Record<string, string> {
  const headers: Record<string, string> = { 'user-data': userData(meta) };
  if (options.rule !== '') headers['rule'] = encodeURIComponent(options.rule);
  return headers;
}

/**
 * `user-data`, percent-encoded. Whether the 1024-byte limit counts the raw or the encoded text is
 * not said; the encoded text stays within it, so both readings hold.
 */
export function userData(meta: ScanMeta): string {
  const full = encodeURIComponent(metadataHeader(meta));
  if (full.length <= MAX_USER_DATA_BYTES) return full;
  // A huge transaction id: its first 80 code points encode to at most 80 × 12 = 960 bytes.
  return encodeURIComponent(Array.from(meta.transactionId).slice(0, 80).join(''));
}

/** `POST /file` adding part `index` (0-based) of the upload to batch `batchId` (§2, §7). */
export function batchFileHeaders(meta: ScanMeta, part: ScanPart, index: number, batchId: string, options: { readonly rule: string }): Record<string, string> {
  const headers: Record<string, string> = {
    batch: batchId,
    // Core echoes metadata into the file's result: which upload and which part it was.
    metadata: metadataHeader(meta, { part: index + 1 }),
  };
  const name = baseName(part.fileName);
  if (name !== undefined) headers['filename'] = encodeURIComponent(name);
  if (options.rule !== '') headers['rule'] = encodeURIComponent(options.rule);
  return headers;
}

/** A batch_id we can put in a header and a path: printable ASCII, no spaces, of sane length. */
export function isUsableBatchId(value: unknown): value is string {
  return typeof value === 'string' && /^[\x21-\x7e]{1,256}$/.test(value);
}
