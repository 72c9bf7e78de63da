/**
 * The configuration schema: the single source of truth for keys, ranges and defaults. The Config
 * type is inferred from it, so the YAML, the validation and the TypeScript type cannot drift.
 *
 * It is built per load because two rules depend on the file being loaded: relative paths resolve
 * against the file's directory, and a service's preview may not exceed server.limits.preview_bytes
 * (making that the field's own range reports it beside every other field problem).
 */
import { tmpdir } from 'node:os';
import * as z from 'zod';
import { backendSchema, DEFAULT_BACKENDS } from './backend-schema.js';
import type { DeepReadonly } from './deep-freeze.js';
import { DEFAULT_BLOCK_PAGE } from './paths.js';
import { listsSchema, rulesSchema } from './policy-schema.js';
import {
  aliasPath,
  boolean,
  host,
  integer,
  list,
  mapping,
  name,
  namedMap,
  oneOf,
  readableFile,
  section,
  writableDirectory,
} from './rules.js';

/** Hard ceiling on a Preview: a client may declare, whatever the config says. */
export const PREVIEW_BYTES_MAX = 16_777_216;

/** server.limits.preview_bytes alone; the loader reads it first to bound each service's preview. */
export const serverPreviewBytes = integer(0, PREVIEW_BYTES_MAX).default(65_536);

/** Whether the verdict cache is on when the config does not say. */
export const VERDICT_CACHE_ENABLED_BY_DEFAULT = true;

export const ICAP_METHODS = ['REQMOD', 'RESPMOD'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const ACCESS_LOG_FORMATS = ['json', 'squid'] as const;

export interface SchemaContext {
  /** Directory of the config file. */
  readonly baseDir: string;
  /** The file's server.limits.preview_bytes (or its default). */
  readonly previewLimit: number;
}

/** The services a config gets when it names none; product aliases let existing Squid configs point at us unchanged. */
export const DEFAULT_SERVICES = {
  respmod: { methods: ['RESPMOD'], aliases: ['OMSScanResp-AV'] },
  reqmod: { methods: ['REQMOD'], aliases: ['OMSScanReq-AV'] },
  avscan: { methods: ['REQMOD', 'RESPMOD'], aliases: ['virus_scan', 'squidclamav', 'srv_clamav'] },
} as const;

function serverSchema(ctx: SchemaContext) {
  const processesError = () => 'must be an integer between 1 and 256, or "auto" (one process per CPU)';
  return section({
    listen: list(
      mapping({
        host: host().default('127.0.0.1'),
        port: integer(0, 65_535).default(1344),
      }),
      { nonEmpty: true },
    ).default([{ host: '127.0.0.1', port: 1344 }]),
    max_connections: integer(1).default(512),
    /**
     * Answers per connection before icap-bridge closes it (the last one says Connection: close),
     * as c-icap's MaxKeepAliveRequests (100): a client then reconnects, and a TCP load balancer in
     * front gets to place the new connection, e.g. on an instance that was just restarted.
     * 0 = no limit.
     */
    max_requests_per_connection: integer(0).default(100),
    /**
     * Server processes sharing the listeners (node:cluster): 1 = this process serves alone;
     * more = a primary that owns signals and the admin listener, plus that many workers.
     * "auto" = one per CPU (os.availableParallelism()).
     */
    processes: z
      .union(
        [
          z.literal('auto'),
          z.number({ error: processesError }).int({ error: processesError }).min(1, { error: processesError }).max(256, { error: processesError }),
        ],
        { error: processesError },
      )
      .default(1),
    /** ICAPS (ICAP over TLS, Squid's icaps://); cert and key are required when enabled (cross-field). */
    tls: section({
      enabled: boolean().default(false),
      listen: list(
        mapping({
          host: host().default('127.0.0.1'),
          port: integer(0, 65_535).default(11_344),
        }),
        { nonEmpty: true },
      ).default([{ host: '127.0.0.1', port: 11_344 }]),
      cert: readableFile(ctx.baseDir).optional(),
      key: readableFile(ctx.baseDir).optional(),
      /** When set, clients must present a certificate signed by this CA (mutual TLS). */
      client_ca: readableFile(ctx.baseDir).optional(),
    }),
    timeouts: section({
      shutdown_grace_ms: integer(0).default(10_000),
      header_ms: integer(1).default(30_000),
      // Squid's icap_io_timeout (5 min): an origin that pauses a download that long is one Squid
      // itself waits for, so cutting it sooner broke clean traffic (server-sent events, slow CGI).
      body_idle_ms: integer(1).default(300_000),
      keep_alive_ms: integer(1).default(75_000),
      /**
       * An answer the client takes nothing of for this long is cut: its transaction is aborted and
       * its temp file freed. Squid's own write_timeout (15 min) is the default.
       */
      write_idle_ms: integer(1).default(900_000),
    }),
    limits: section({
      icap_header_bytes: integer(256, 16_777_216).default(65_536),
      http_header_bytes: integer(256, 16_777_216).default(65_536),
      // Squid forwards any count its 64 KiB reply_header_max_size holds, and counts a refused head as
      // an ICAP failure toward suspending the service: the byte limits bound memory, not this.
      header_count: integer(8, 10_000).default(10_000),
      chunk_line_bytes: integer(16, 65_536).default(1024),
      body_bytes: integer(0).default(17_179_869_184),
      preview_bytes: serverPreviewBytes,
    }),
  });
}

function serviceSchema(ctx: SchemaContext) {
  const limit = ctx.previewLimit;
  const previewError = (iss: { code: string; input?: unknown }) =>
    iss.code === 'too_big' && Number.isInteger(iss.input)
      ? `must not exceed server.limits.preview_bytes (${limit})`
      : `must be an integer between 0 and ${limit}`;
  return mapping({
    methods: list(oneOf(ICAP_METHODS), { nonEmpty: true, unique: true }).default([...ICAP_METHODS]),
    aliases: list(aliasPath()).default([]),
    preview_bytes: z
      .number({ error: previewError })
      .int({ error: previewError })
      .min(0, { error: previewError })
      .max(limit, { error: previewError })
      // prefault, not default: the default must also fit under a lowered server limit.
      .prefault(1024),
    options_ttl_s: integer(1).default(3600),
    allow_204: boolean().default(true),
    /**
     * 206 Partial Content (icap-extensions.md §C): advertise Allow: 206 and answer an unchanged
     * message with its headers and use-original-body=0 where no 204 is sent (src/server/partial-content.ts).
     */
    allow_206: boolean().default(false),
    /** The implicit last rule: scan with these backends, on_error for every failure kind. */
    backends: list(name('backend'), { nonEmpty: true, unique: true }).default(['builtin']),
    on_error: oneOf(['block', 'allow']).default('block'),
    /** Ordered policy rules (policy-schema.ts); the first that matches decides. Absent: none. */
    rules: rulesSchema().optional(),
    /** Allow and deny lists, loaded from files with the configuration. Absent: none. */
    lists: listsSchema(ctx.baseDir).optional(),
    block_page: readableFile(ctx.baseDir).prefault(DEFAULT_BLOCK_PAGE),
    /**
     * Squid 5.7 "commit on idle" (specs/squid-interop.md, Recipe 1): for RESPMOD without
     * Allow: 204, when the body pauses, start the 200 answer and release held bytes one at a time.
     */
    commit_on_idle: section({
      enabled: boolean().default(true),
      idle_ms: integer(1, 60_000).default(100),
      max_bytes: integer(1, 65_536).default(256),
    }),
    /**
     * Trickle delivery of large RESPMOD bodies (src/server/trickle.ts): once the body reaches
     * min_body_bytes (or Content-Length says it will), the 200 answer starts and body bytes flow
     * to the client while they arrive, all but the last hold_back_bytes until the verdict.
     */
    trickle: section({
      enabled: boolean().default(false),
      min_body_bytes: integer(0).default(10_485_760),
      hold_back_bytes: integer(1, 1_073_741_824).default(1_048_576),
    }),
    /**
     * How an answer committed early (commit_on_idle, trickle) ends when the verdict is not clean.
     * short-body: the ICAP answer ends properly, its HTTP body short of the Content-Length the
     * head announced, so the client's transfer is cut without Squid counting an ICAP failure
     * (eleven failures suspend the service for every user, squid-interop.md). A body without a
     * Content-Length is still cut by closing: nothing else tells a client it is short.
     * close: always close the connection without the last chunk.
     */
    cut_after_commit: oneOf(['short-body', 'close']).default('short-body'),
    /**
     * Content-Encoding gzip, deflate and br bodies are scanned decoded (issue 5); what is echoed
     * stays the original bytes. Past max_decoded_bytes the outcome is too-large; past max_ratio
     * decoded bytes per encoded byte (beyond the first MiB) it is decompression-bomb. 1000, not
     * 100: brotli and zstd take real JSON and logs past 100:1 (a 7.3 MB br JSON was 106:1), while
     * a gzip bomb of zeros is ~1030:1 and still trips it.
     */
    content_decoding: section({
      enabled: boolean().default(true),
      max_decoded_bytes: integer(1).default(536_870_912),
      max_ratio: integer(1).default(1000),
    }),
    /**
     * REQMOD multipart/form-data: each part is also scanned as its own file (issue 5). max_parts
     * counts text fields too; 1000 is what PHP (max_input_vars) and Django
     * (DATA_UPLOAD_MAX_NUMBER_FIELDS) accept, so a form its application takes is not blocked here.
     */
    multipart: section({
      enabled: boolean().default(true),
      max_parts: integer(1, 100_000).default(1000),
    }),
  });
}

export function createConfigSchema(ctx: SchemaContext) {
  return section({
    server: serverSchema(ctx),
    spool: section({
      memory_bytes: integer(0).default(1_048_576),
      directory: writableDirectory(ctx.baseDir, tmpdir).prefault(''),
    }),
    backends: namedMap('backend', backendSchema(ctx)).prefault(DEFAULT_BACKENDS),
    services: namedMap('service', serviceSchema(ctx))
      .refine((services) => Object.keys(services).length > 0, { error: () => 'must define at least one service' })
      .prefault(DEFAULT_SERVICES),
    /** The admin HTTP listener: /metrics (Prometheus), /healthz, /readyz. */
    admin: section({
      enabled: boolean().default(false),
      host: host().default('127.0.0.1'),
      port: integer(0, 65_535).default(9090),
    }),
    logging: section({
      level: oneOf(LOG_LEVELS).default('info'),
      access_log: boolean().default(true),
      /** json: one JSON line with every field; squid: Squid's access.log layout (access-line-squid.ts). */
      access_log_format: oneOf(ACCESS_LOG_FORMATS).default('json'),
    }),
    /**
     * Verdict cache (issue 5): a repeated file is answered without rescanning. Keyed by the
     * SHA-256 of the scanned content, the engines' versions and the policy; only definite
     * verdicts (every engine clean, or one infected) are kept. One cache per configuration
     * generation: a reload starts empty.
     */
    cache: section({
      enabled: boolean().default(VERDICT_CACHE_ENABLED_BY_DEFAULT),
      max_entries: integer(1, 10_000_000).default(10_000),
      ttl_s: integer(1).default(3600),
      max_bytes: integer(1024).default(16_777_216),
    }),
  });
}

type ParsedConfig = z.output<ReturnType<typeof createConfigSchema>>;

/** The validated, resolved, deeply frozen configuration. */
export type Config = DeepReadonly<ParsedConfig & { /** Absolute path of the file it came from. */ source: string }>;
export type ServiceConfig = Config['services'][string];
export type BackendConfig = Config['backends'][string];
