/**
 * Schema building blocks. Each one carries its rule text, so a message always says what the value
 * must be; the offending value is appended later (issues.ts), where secrets can be kept out of it.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import * as z from 'zod';

/** Service and backend names: they become URL paths and metric labels, so keep them plain. */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;
const NAME_RULE = 'letters, digits, "_", "." and "-"';

/** Alias paths: one or more segments, no leading slash (the router adds it). */
const ALIAS_PATTERN = /^[A-Za-z0-9_.~-]+(?:\/[A-Za-z0-9_.~-]+)*$/;

// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
const HOSTNAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** `params` for a custom check whose message should be followed by the value found (issues.ts). */
export const SHOW_VALUE = { showValue: true } as const;

/** An integer in [min, max] (max omitted: no upper bound beyond a safe integer). */
export function integer(min: number, max?: number) {
  const rule = max === undefined ? `must be an integer >= ${min}` : `must be an integer between ${min} and ${max}`;
  const error = () => rule;
  const base = z.number({ error }).int({ error }).min(min, { error });
  return max === undefined ? base : base.max(max, { error });
}

export function boolean() {
  return z.boolean({ error: () => 'must be true or false' });
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: () => `must be one of: ${values.join(', ')}` });
}

export function host() {
  const error = () => 'must be an IPv4 or IPv6 address or a host name';
  return z.string({ error }).refine((h) => isIP(h) !== 0 || HOSTNAME_PATTERN.test(h), { error, params: SHOW_VALUE });
}

export function name(what: string) {
  const error = () => `${what} name must be made of ${NAME_RULE}`;
  return z.string({ error }).regex(NAME_PATTERN, { error });
}

export function aliasPath() {
  const error = () => 'must be a path without a leading slash: letters, digits, "_", ".", "-" and "~", segments separated by "/"';
  return z.string({ error }).regex(ALIAS_PATTERN, { error });
}

/** A list; `nonEmpty` and `unique` are checked with the index of the offending item. */
export function list<T extends z.ZodType>(item: T, opts: { nonEmpty?: boolean; unique?: boolean } = {}) {
  const error = () => (opts.nonEmpty ? 'must be a non-empty list' : 'must be a list');
  return z
    .array(item, { error })
    .min(opts.nonEmpty ? 1 : 0, { error })
    .superRefine((items, ctx) => {
      if (!opts.unique) return;
      const seen = new Set<unknown>();
      items.forEach((value, i) => {
        if (seen.has(value)) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate entry ${JSON.stringify(value)}` });
        seen.add(value);
      });
    });
}

function strictObjectError(shape: z.ZodRawShape) {
  const expected = Object.keys(shape).join(', ');
  return (iss: { code: string }) =>
    iss.code === 'unrecognized_keys' ? `unknown key (expected one of: ${expected})` : 'must be a mapping';
}

/** A mapping with a fixed set of keys: unknown keys are errors so typos never pass silently. */
export function strictMapping<S extends z.ZodRawShape>(shape: S) {
  return z.strictObject(shape, { error: strictObjectError(shape) });
}

/**
 * A strict mapping that also accepts an empty value: commenting out every line under `server:`
 * leaves `server: null` in YAML, which should mean "all defaults", not an error.
 */
export function mapping<S extends z.ZodRawShape>(shape: S) {
  return z.preprocess((v) => (v === null ? {} : v), strictMapping(shape));
}

/** A top-level or nested section whose absence means "all defaults". */
export function section<S extends z.ZodRawShape>(shape: S) {
  return mapping(shape).prefault({});
}

/** name → settings, names checked against NAME_PATTERN. */
export function namedMap<T extends z.ZodType>(what: string, value: T) {
  const keyRule = `${what} name must be made of ${NAME_RULE}`;
  const record = z.record(name(what), value, {
    error: (iss) => (iss.code === 'invalid_key' ? keyRule : `must be a mapping of ${what} name to its settings`),
  });
  // z.record silently drops a `__proto__` key (assigning it would replace the prototype); an
  // entry that vanishes without a word is exactly what strict checking is for, so report it.
  return z.preprocess((input, ctx) => {
    if (input !== null && typeof input === 'object' && Object.hasOwn(input, '__proto__')) {
      ctx.addIssue({ code: 'custom', path: ['__proto__'], message: `"__proto__" cannot be a ${what} name` });
    }
    return input;
  }, record);
}

/** A file path resolved against `baseDir`, which must name a readable regular file now. */
export function readableFile(baseDir: string) {
  const error = () => 'must be a file path';
  return z
    .string({ error })
    .min(1, { error })
    .transform((p) => resolve(baseDir, p))
    .superRefine((file, ctx) => {
      const why = whyUnusable(file, 'file');
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
    });
}

/** A directory path resolved against `baseDir` ('' = os tmpdir, resolved by the caller), writable now. */
export function writableDirectory(baseDir: string, whenEmpty: () => string) {
  return z
    .string({ error: () => 'must be a directory path ("" for the system temporary directory)' })
    .transform((p) => (p === '' ? whenEmpty() : resolve(baseDir, p)))
    .superRefine((dir, ctx) => {
      const why = whyUnusable(dir, 'directory');
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
    });
}

/** Why `path` cannot serve: a file must be readable, a directory readable and writable. */
function whyUnusable(path: string, kind: 'file' | 'directory'): string | undefined {
  try {
    const stat = statSync(path);
    if (kind === 'file' && !stat.isFile()) return `${JSON.stringify(path)} is not a regular file`;
    if (kind === 'directory' && !stat.isDirectory()) return `${JSON.stringify(path)} is not a directory`;
    accessSync(path, kind === 'file' ? constants.R_OK : constants.R_OK | constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `${kind} ${JSON.stringify(path)} does not exist`;
    const access = kind === 'file' ? 'readable' : 'writable';
    if (code === 'EACCES' || code === 'EPERM') return `${kind} ${JSON.stringify(path)} is not ${access}`;
    return `${kind} ${JSON.stringify(path)} cannot be used: ${(err as Error).message}`;
  }
}
