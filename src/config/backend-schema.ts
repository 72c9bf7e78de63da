/**
 * Scanning backends, a union discriminated on `type`. Adding an engine (clamd, metadefender, icap)
 * is one more schema here and one more entry in the list passed to z.discriminatedUnion.
 */
import * as z from 'zod';
import { readFileSync } from 'node:fs';
import { HashListError, parseHashList } from '../backends/builtin/hash-list.js';
import { CLAMD_DEFAULTS, CLAMD_POOL_DEFAULTS, CLAMD_TRANSFERS } from '../backends/clamd/clamd-config.js';
import { parseClamdEndpoint } from '../backends/clamd/endpoint.js';
import { METADEFENDER_POOL_DEFAULTS } from '../backends/metadefender/metadefender-config.js';
import { icapBackend } from './icap-backend-schema.js';
import { checkPoolKeys, poolKeys } from './pool-schema.js';
import { boolean, integer, list, oneOf, readableFile, SHOW_VALUE, strictMapping } from './rules.js';

export interface BackendSchemaContext {
  /** Directory of the config file; relative paths in backend settings resolve against it. */
  readonly baseDir: string;
}

/** The embedded engine (EICAR, SHA-256 hash lists), run in the worker pool. */
function builtinBackend(ctx: BackendSchemaContext) {
  return strictMapping({
    type: z.literal('builtin'),
    /**
     * Worker threads per server process; 0 = the CPUs shared out between server.processes (at
     * least 1). Kept as 0 here so the config (and ISTag) is machine-independent.
     */
    workers: integer(0).default(0),
    /**
     * Bodies held in memory up to this size are scanned on the event loop instead of a worker:
     * hashing 64 KiB takes tens of µs, less than a thread hand-off. 0 = always use the workers.
     */
    inline_max_bytes: integer(0).default(65_536),
    timeout_ms: integer(1).default(120_000),
    eicar: boolean().default(true),
    /** SHA-256 hash list files, read and parsed at load (hashListFile). */
    hash_lists: list(hashListFile(ctx.baseDir)).default([]),
  });
}

/**
 * A builtin hash list, read and parsed now by the parser the backend itself uses (hash-list.ts), so
 * a bad line is a configuration error naming the key, the file and the line: `icap-bridge check`
 * reports it, a start (a cluster primary's included) refuses it before any worker is forked, and
 * a SIGHUP with it keeps the running configuration. As policy lists are (policy-schema.ts), but
 * the value stays the path: the backend reads the file again when built (a cluster worker, the
 * primary's copy of it: file-snapshots.ts), as a list may be too large to travel in the config.
 */
function hashListFile(baseDir: string) {
  return readableFile(baseDir).transform((file, ctx) => {
    try {
      parseHashList(readFileSync(file, 'utf8'), file);
      return file;
    } catch (err) {
      // HashListError's message is "FILE:LINE: what is wrong".
      const message = err instanceof HashListError ? err.message : `${file}: cannot read hash list: ${(err as Error).message}`;
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
  });
}

/** A clamd endpoint: `host:port`, `[v6]:port` or an absolute UNIX socket path. */
function clamdEndpoint() {
  return z
    .string({ error: () => 'must be "host:port", "[IPv6]:port" or an absolute UNIX socket path' })
    .superRefine((text, ctx) => {
      const parsed = parseClamdEndpoint(text);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason, params: SHOW_VALUE });
    });
}

/** ClamAV clamd or Dr.Web ClamD over TCP or a UNIX socket, INSTREAM or SCAN by path (shared/specs/clamd-protocol.md). */
function clamdBackend() {
  const d = CLAMD_DEFAULTS;
  return strictMapping({
    type: z.literal('clamd'),
    endpoints: list(clamdEndpoint(), { nonEmpty: true, unique: true }),
    /** clamd's StreamMaxLength (its default is 25 MiB before 0.105, 100 MiB since): match it. 4 GiB - 1 is the protocol's chunk-length range. */
    stream_max_bytes: integer(1, 4_294_967_295).default(d.stream_max_bytes),
    chunk_bytes: integer(1, 16 * 1024 * 1024).default(d.chunk_bytes),
    connect_timeout_ms: integer(1).default(d.connect_timeout_ms),
    read_timeout_ms: integer(1).default(d.read_timeout_ms),
    /** false where clamd answers VERSION with COMMAND UNAVAILABLE (1.5+ EnableVersionCommand no). */
    version_command: boolean().default(d.version_command),
    /**
     * instream: bytes over the socket (any clamd). path: `zSCAN <spool file>`, clamd reads the
     * file itself — clamd on this host, able to read spool.directory (same user, or the files'
     * group); a file it cannot read is sent by INSTREAM instead (src/backends/clamd/clamd-config.ts).
     */
    transfer: oneOf(CLAMD_TRANSFERS).default(d.transfer),
    /** balance, weights, max_concurrency, max_queue (pool-wide), eject_after, cooldown_ms, health_*, dns. */
    ...poolKeys(CLAMD_POOL_DEFAULTS),
  }).superRefine((b, ctx) => checkPoolKeys(b, ctx));
}

/** A MetaDefender Core base URL: http(s), no query or fragment (specs/metadefender-core-api.md §1). */
function metadefenderEndpoint() {
  const rule = 'must be an http:// or https:// base URL without query or fragment, e.g. "http://core-1:8008"';
  return z.string({ error: () => rule }).superRefine((text, ctx) => {
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    const ok = url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === '' && url.username === '';
    if (!ok) ctx.addIssue({ code: 'custom', message: rule, params: SHOW_VALUE });
  });
}

/** MetaDefender Core v4/v5 over REST: submit, poll on the accepting node, sanitized download, hash lookup. */
function metadefenderBackend() {
  return strictMapping({
    type: z.literal('metadefender'),
    endpoints: list(metadefenderEndpoint(), { nonEmpty: true, unique: true }),
    /** Sent as the `apikey` header; '' = none. Use `${MD_APIKEY}` rather than writing it here. */
    apikey: z.string({ error: () => 'must be a string' }).default(''),
    /** Workflow rule name; '' = the server's default rule. */
    rule: z.string({ error: () => 'must be a string' }).default(''),
    /** Whole scan, polling and sanitized download included. */
    timeout_ms: integer(1).default(120_000),
    poll_initial_ms: integer(1).default(50),
    /** Exponential back-off cap between polls. */
    poll_max_ms: integer(1).default(1_000),
    /** GET /hash/{sha256} first; a known verdict skips the upload. */
    hash_lookup: boolean().default(false),
    /** Return Core's sanitized file as the new body when it made one. */
    sanitize: boolean().default(false),
    /** 0 = no limit here; bigger bodies are 'too-large' without an upload. */
    max_file_bytes: integer(0).default(0),
    /** balance, weights, max_concurrency (jobs open per Core server), max_queue, eject_after, cooldown_ms, health_*, dns. */
    ...poolKeys(METADEFENDER_POOL_DEFAULTS),
  }).superRefine((b, ctx) => {
    if (b.poll_max_ms < b.poll_initial_ms) {
      ctx.addIssue({ code: 'custom', path: ['poll_max_ms'], message: `must be at least poll_initial_ms (${b.poll_initial_ms})` });
    }
    checkPoolKeys(b, ctx);
  });
}

export function backendSchema(ctx: BackendSchemaContext) {
  const variants = [builtinBackend(ctx), clamdBackend(), metadefenderBackend(), icapBackend(ctx)] as const;
  const types = variants.map((v) => v.shape.type.value).join(', ');
  // A missing or unknown `type` is reported at `backends.NAME.type`; a non-mapping at `backends.NAME`.
  return z.discriminatedUnion('type', variants, {
    error: (iss) => (iss.code === 'invalid_union' ? `must be one of: ${types}` : 'must be a mapping with a "type" key'),
  });
}

/** The backends a config gets when it names none: the embedded engine, so `npm start` just works. */
export const DEFAULT_BACKENDS = { builtin: { type: 'builtin' } } as const;
