/**
 * Scanning backends, a union discriminated on `type`. Adding an engine (clamd, metadefender, icap)
 * is one more schema here and one more entry in the list passed to z.discriminatedUnion.
 */
import * as z from 'zod';
import { boolean, integer, list, readableFile, strictMapping } from './rules.js';

export interface BackendSchemaContext {
  /** Directory of the config file; relative paths in backend settings resolve against it. */
  readonly baseDir: string;
}

/** The embedded engine (EICAR, SHA-256 hash lists), run in the worker pool. */
function builtinBackend(ctx: BackendSchemaContext) {
  return strictMapping({
    type: z.literal('builtin'),
    /** Worker threads; 0 = one per CPU. Kept as 0 here so the config (and ISTag) is machine-independent. */
    workers: integer(0).default(0),
    timeout_ms: integer(1).default(120_000),
    eicar: boolean().default(true),
    /** SHA-256 hash list files, checked readable at load so a typo fails at start, not at first scan. */
    hash_lists: list(readableFile(ctx.baseDir)).default([]),
  });
}

export function backendSchema(ctx: BackendSchemaContext) {
  const variants = [builtinBackend(ctx)] as const;
  const types = variants.map((v) => v.shape.type.value).join(', ');
  // A missing or unknown `type` is reported at `backends.NAME.type`; a non-mapping at `backends.NAME`.
  return z.discriminatedUnion('type', variants, {
    error: (iss) => (iss.code === 'invalid_union' ? `must be one of: ${types}` : 'must be a mapping with a "type" key'),
  });
}

/** The backends a config gets when it names none: the embedded engine, so `npm start` just works. */
export const DEFAULT_BACKENDS = { builtin: { type: 'builtin' } } as const;
