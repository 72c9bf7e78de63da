/**
 * Reads an HTTP Content-Encoding field value into the list of codings to undo.
 *
 * RFC 9110 §8.4: `Content-Encoding = #content-coding`, case-insensitive tokens, listed in the
 * order they were applied, so they are undone last to first. §5.6.1.2: empty list elements
 * ("gzip, , br") are ignored. §8.4.1.3: "x-gzip" is gzip. "identity" is a no-op wherever it is.
 */

/** Codings we can undo. */
export type ContentCoding = 'gzip' | 'deflate' | 'br';

export type ParsedContentEncoding =
  /** `codings` in the order they were applied (decode from the last one); empty means identity. */
  | { readonly ok: true; readonly codings: readonly ContentCoding[] }
  /** `coding` is the first token we cannot undo, lower-cased (zstd, compress, garbage). */
  | { readonly ok: false; readonly coding: string };

const ALIASES: Readonly<Record<string, ContentCoding | 'identity'>> = {
  gzip: 'gzip',
  'x-gzip': 'gzip',
  deflate: 'deflate',
  br: 'br',
  identity: 'identity',
};

/** `value` as received; several Content-Encoding fields should be joined with ", " first. */
export function parseContentEncoding(value: string | null | undefined): ParsedContentEncoding {
  const codings: ContentCoding[] = [];
  if (value === null || value === undefined) return { ok: true, codings };
  for (const element of value.split(',')) {
    const token = element.trim().toLowerCase();
    if (token === '') continue;
    const coding = Object.hasOwn(ALIASES, token) ? ALIASES[token] : undefined;
    if (coding === undefined) return { ok: false, coding: token };
    if (coding !== 'identity') codings.push(coding);
  }
  return { ok: true, codings };
}
