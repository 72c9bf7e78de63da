/**
 * The emulator's own settings: one object, given to startEmulator() directly or read from a JSON
 * or YAML file (`--config`). Keys are the same in both; unknown keys are errors so a typo in a
 * failure-injection setting never silently tests nothing. README.md documents every key.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import * as z from 'zod';

/** Request kinds that failure injection can target (README.md, "Failure injection"). */
export const ROUTES = ['submit', 'poll', 'hash', 'converted', 'batch', 'cancel', 'health', 'info'] as const;
export type Route = (typeof ROUTES)[number];

const rate = z.number().min(0).max(1);
/** A number applies to every route; a mapping names routes (`"*"` = the rest). */
const perRoute = (value: z.ZodNumber) =>
  z.union([value, z.strictObject(Object.fromEntries([...ROUTES, '*'].map((r) => [r, value.optional()])) as Record<Route | '*', z.ZodOptional<z.ZodNumber>>)]);

const resultCode = z.number().int().min(0).max(255);

const engineSchema = z.strictObject({
  name: z.string().min(1),
  version: z.string().default('1.0.0'),
  defTime: z.string().default('2024-05-01T08:00:00.000Z'),
  /** Detection name this engine reports for EICAR. */
  eicarName: z.string().default('EICAR-Test-File'),
});

const ruleSchema = z.strictObject({
  name: z.string().min(1),
  maxFileSize: z.number().int().min(0).default(200_000_000),
  /** When set, only these user_agent values may use the rule (others get 403). */
  userAgents: z.array(z.string()).optional(),
});

/** First matching rule decides the overall result code of a file that is neither EICAR nor a listed hash. */
const resultRuleSchema = z.strictObject({
  filenameSuffix: z.string().optional(),
  minSize: z.number().int().min(0).optional(),
  /** Matches when the body contains this text (latin1). */
  contains: z.string().optional(),
  code: resultCode,
  /** Overrides the policy verdict of the code (codes.ts). */
  result: z.enum(['Allowed', 'Blocked']).optional(),
  blockedReason: z.string().optional(),
  /** Detection name the engines report (codes 1, 2, 22). */
  threat: z.string().optional(),
});

const optionsSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(0),
  /** 4: no /readyz, no blocked_reasons array; 5: both. */
  apiVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  version: z.string().optional(),
  /** Accepted apikey values; empty = the server has no key configured. */
  apikeys: z.array(z.string().min(1)).default([]),
  /** Status for a missing or wrong apikey: 400 per spec §2 (v4/v5), 401 as v3 did. */
  authErrorStatus: z.union([z.literal(400), z.literal(401)]).default(400),
  rules: z.array(ruleSchema).min(1).default([{ name: 'File scan', maxFileSize: 200_000_000 }]),
  engines: z
    .array(engineSchema)
    .min(1)
    .default([
      { name: 'ClamAV', version: '1.3.1', defTime: '2024-05-01T08:00:00.000Z', eicarName: 'Win.Test.EICAR_HDB-1' },
      { name: 'EngineB', version: '2.0.0', defTime: '2024-05-01T09:00:00.000Z', eicarName: 'EICAR-Test-File' },
    ]),
  /** Time from upload to progress 100; progress rises linearly in between. */
  scanDurationMs: z.number().int().min(0).default(200),
  /**
   * Core's policy stages (sanitization, DLP, file type) after the AV part, for durationMs more
   * (§3 completion rule). Meanwhile scan_results reads 100 with the engines' own code (0 for a
   * DLP or file-type finding), while process_info says "Processing" with no progress_percentage
   * ('missing') or one below 100 ('behind'). 0 = both parts end together.
   */
  postProcessing: z
    .strictObject({
      durationMs: z.number().int().min(0).default(0),
      progress: z.enum(['missing', 'behind']).default('missing'),
    })
    .prefault({}),
  /** Unfinished jobs beyond this → 503 on submit (the spec's "scan queue full"). */
  maxQueue: z.number().int().min(1).default(500),
  /** Finished jobs are forgotten after this (then "Not Found"). */
  jobRetentionMs: z.number().int().min(1).default(600_000),
  /** Status of the "unknown data_id" answer (§3, unconfirmed: 404 on older servers, 200 on some). */
  notFoundStatus: z.union([z.literal(404), z.literal(200)]).default(404),
  /** Status of the hash-lookup "Not Found" answer (§6: 200 on older servers, 404 on newer). */
  hashNotFoundStatus: z.union([z.literal(404), z.literal(200)]).default(200),
  /** Very old servers: no process_info in results (§3, completion rule). */
  omitProcessInfo: z.boolean().default(false),
  eicar: z.boolean().default(true),
  hashes: z
    .array(z.strictObject({ sha256: z.string().regex(/^[0-9a-fA-F]{64}$/), name: z.string(), code: resultCode.default(1) }))
    .default([]),
  resultRules: z.array(resultRuleSchema).default([]),
  sanitize: z
    .strictObject({
      /** Files whose name ends so are sanitized (case-insensitive). */
      filenameSuffixes: z.array(z.string()).default([]),
      all: z.boolean().default(false),
      /** Files whose name ends so get "Sanitization Failed". */
      failSuffixes: z.array(z.string()).default([]),
      /** Also add MetaDefender Cloud's `sanitized` object with a `file_path` link (§3). */
      cloudObject: z.boolean().default(false),
    })
    .prefault({}),
  batchCloseRequiresFinished: z.boolean().default(false),
  /** /readyz answers 200 when true, 503 when false. */
  ready: z.boolean().default(true),
  /** Bodies are held in memory by the emulator: larger uploads get 500. */
  maxBodyBytes: z.number().int().min(1).default(64 * 1024 * 1024),
  requestLogLimit: z.number().int().min(0).default(10_000),
  faults: z
    .strictObject({
      /** Delay before answering, ms. */
      latencyMs: perRoute(z.number().int().min(0)).default(0),
      /** Chance of `503 {"err":"Server is too busy. Try again later."}`. */
      status503Rate: perRoute(rate).default(0),
      /** Chance of `500 {"err":"Internal server error."}` (§2, §5: Core's own failure). */
      status500Rate: perRoute(rate).default(0),
      /**
       * Chance of a `502 Bad Gateway` HTML page: not Core but a load balancer in front of it
       * (§9 pattern 2) that could not reach the node. The spec lists no 502; the body is not JSON.
       */
      status502Rate: perRoute(rate).default(0),
      /**
       * Chance of `429 {"err":"Too many requests."}`: undocumented for v4/v5, to be treated like 503
       * (§2). The spec names no Retry-After header: none is sent unless retryAfterSeconds is set.
       */
      status429Rate: perRoute(rate).default(0),
      /**
       * `Retry-After: <seconds>` on the injected busy answers (status503Rate, status429Rate). The
       * spec names none (§2), so by default none is sent; this stands for a balancer or a later
       * Core that does send one.
       */
      retryAfterSeconds: z.number().int().min(0).optional(),
      /** Chance of closing the connection without an answer. */
      dropRate: perRoute(rate).default(0),
      /**
       * Chance that an upload (`POST /file`) is cut by a TCP reset once half of its declared body has
       * arrived: the client is still sending, the content never reaches a scan.
       */
      uploadResetRate: rate.default(0),
      /** Chance of a 200 whose JSON body is cut short (Content-Length still right). */
      malformedJsonRate: perRoute(rate).default(0),
      /** Chance that a poll or converted download treats a known data_id as unknown. */
      unknownDataIdRate: rate.default(0),
      /** Chance that a batch certificate's content is changed after signing (the signature no longer matches). */
      tamperedCertificateRate: rate.default(0),
      /** PRNG seed, so a given config injects the same faults in the same order. */
      seed: z.number().int().default(1),
    })
    .prefault({}),
});

export type EmulatorOptions = z.input<typeof optionsSchema>;
export type ResolvedOptions = z.output<typeof optionsSchema>;
export type Faults = ResolvedOptions['faults'];

export function resolveOptions(options: EmulatorOptions = {}): ResolvedOptions {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`invalid MetaDefender emulator options:\n${lines.join('\n')}`);
  }
  const resolved = parsed.data;
  resolved.version ??= resolved.apiVersion === 4 ? '4.21.1' : '5.10.1';
  return resolved;
}

/** Reads a `.json`, `.yaml` or `.yml` file (YAML also reads JSON, so any other name works too). */
export function loadOptionsFile(path: string): EmulatorOptions {
  const text = readFileSync(path, 'utf8');
  const value: unknown = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  return (value ?? {}) as EmulatorOptions;
}

/** The value of a per-route setting for `route`. */
export function forRoute(setting: number | Partial<Record<Route | '*', number | undefined>>, route: Route): number {
  if (typeof setting === 'number') return setting;
  return setting[route] ?? setting['*'] ?? 0;
}
