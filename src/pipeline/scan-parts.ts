/**
 * Scans the parts of one multipart upload with every backend (issue 5: "each file part is
 * scanned as its own file with its own filename"). Backends run in parallel:
 *
 *   backend.scanParts? ── yes ─► one call for all parts (MetaDefender Core: one batch)
 *                     └─ no ──► scan() per part, at most `concurrency` at a time
 *
 * Never rejects. Every part gets exactly one result per backend, in the backends' order; a
 * backend that throws, or answers with the wrong number of results, yields error results, so a
 * broken engine can never make a part pass unscanned. Empty parts are clean without a scan, as
 * empty bodies are: there is nothing an engine could find.
 */
import type { Backend, BackendResult, PartsBatch, ScanMeta, ScanPart } from '../backends/backend.js';
import { derivedMeta } from './derived-meta.js';

/** scan() calls per backend at once when it has no scanParts. */
export const DEFAULT_PART_CONCURRENCY = 4;

export interface PartsScanOutcome {
  /** `byPart[p]` holds one result per backend for `parts[p]`, in the backends' order. */
  readonly byPart: readonly (readonly BackendResult[])[];
  /** The batches backends opened for these parts (MetaDefender Core), for the access log. */
  readonly batches: readonly (PartsBatch & { readonly backend: string })[];
}

export async function scanPartsWithBackends(
  backends: readonly Backend[],
  parts: readonly ScanPart[],
  meta: ScanMeta,
  signal: AbortSignal,
  concurrency = DEFAULT_PART_CONCURRENCY,
): Promise<PartsScanOutcome> {
  const batches: (PartsBatch & { backend: string })[] = [];
  const perBackend = await Promise.all(
    backends.map(async (backend): Promise<readonly BackendResult[]> => {
      const started = performance.now();
      const failAll = (message: string): BackendResult[] =>
        parts.map(() => ({ outcome: 'error', backend: backend.name, kind: 'backend-error', message, durationMs: performance.now() - started }));
      try {
        if (!backend.scanParts) return await scanEach(backend, parts, meta, signal, concurrency);
        const scan = await backend.scanParts(parts, meta, signal);
        if (scan.batch !== undefined) batches.push({ ...scan.batch, backend: backend.name });
        if (scan.results.length !== parts.length) {
          return failAll(`scanParts answered ${scan.results.length} results for ${parts.length} parts`);
        }
        return scan.results;
      } catch (err) {
        return failAll(err instanceof Error ? err.message : String(err));
      }
    }),
  );
  return { byPart: parts.map((_, p) => perBackend.map((results) => results[p]!)), batches };
}

/** scan() per part with bounded parallelism; results in the parts' order. */
async function scanEach(
  backend: Backend,
  parts: readonly ScanPart[],
  meta: ScanMeta,
  signal: AbortSignal,
  concurrency: number,
): Promise<BackendResult[]> {
  const results = new Array<BackendResult>(parts.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < parts.length) {
      const index = next++;
      const part = parts[index]!;
      if (part.body.size === 0) {
        results[index] = { outcome: 'clean', backend: backend.name, durationMs: 0 };
        continue;
      }
      const started = performance.now();
      try {
        // The part's own media type and a head that describes it (derived-meta.ts), so engines that
        // look at them see the part, not the upload.
        const partMeta = derivedMeta(meta, {
          size: part.body.size,
          ...(part.contentType !== undefined && { contentType: part.contentType }),
          ...(part.fileName !== undefined && { fileName: part.fileName }),
        });
        results[index] = await backend.scan(part.body, partMeta, signal);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        results[index] = { outcome: 'error', backend: backend.name, kind: 'backend-error', message, durationMs: performance.now() - started };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, parts.length)) }, worker));
  return results;
}
