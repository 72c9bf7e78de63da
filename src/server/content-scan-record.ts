/**
 * The access-log fields of a body-end scan (scan-content.ts): cache use, decoding, multipart
 * split, per-part outcomes and the engine batch. Field names are stable (access-log.ts).
 */
import type { AccessRecord } from '../observability/access-log.js';
import type { PreparedContent } from '../pipeline/prepared-content.js';
import type { ContentScan } from '../pipeline/scan-content.js';

export function contentScanFields(scan: ContentScan): Partial<AccessRecord> {
  const fields: Partial<AccessRecord> = { cache: scan.cache, ...preparedContentFields(scan) };
  if (scan.parts !== undefined) fields.parts = scan.parts.map((p) => ({ ...p, threats: [...p.threats] }));
  // One batch per upload is the usual case (one MetaDefender backend); with several, the first.
  const batch = scan.batches[0];
  if (batch !== undefined) {
    fields.batch = {
      backend: batch.backend,
      id: batch.id,
      endpoint: batch.endpoint,
      signed: batch.signed,
      verified: batch.verified,
      ...(batch.detail !== undefined && { detail: batch.detail }),
    };
  }
  return fields;
}

/**
 * The decoding and split of a body prepared for the policy (prepared-content.ts) that a list or
 * rule then answered without a scan: what was found (a bomb, a split failure) still shows.
 */
export function preparedContentFields(prepared: Pick<PreparedContent, 'decoding' | 'multipart'>): Partial<AccessRecord> {
  const fields: Partial<AccessRecord> = {};
  if (prepared.decoding !== undefined) fields.decoding = { ...prepared.decoding, codings: [...prepared.decoding.codings] };
  if (prepared.multipart !== undefined) fields.multipart = { ...prepared.multipart };
  return fields;
}
