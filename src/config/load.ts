/**
 * Loading, in order: read → YAML → ${ENV} substitution → schema (types, ranges, defaults, paths
 * resolved and checked) → cross-field rules → deep freeze. Every problem from every stage that
 * could run is collected and thrown together as one ConfigError.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkCrossFieldRules } from './cross-field.js';
import { deepFreeze } from './deep-freeze.js';
import { substituteEnv } from './env-substitution.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { issuesToProblems } from './issues.js';
import { createConfigSchema, PREVIEW_BYTES_MAX, serverPreviewBytes, type Config } from './schema.js';
import { parseYaml } from './yaml-source.js';

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', rule: `cannot read the file: ${(err as Error).message}` }], { cause: err });
  }
  return parseConfig(text, file, env);
}

/** `source` names the file in messages; relative paths in the config resolve against its directory. */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const file = resolve(source);
  const yaml = parseYaml(text);
  if (!yaml.ok) throw new ConfigError(file, yaml.problems);

  // An empty file (or one with only comments) is null: all defaults.
  const substitution = substituteEnv(yaml.value ?? {}, env);
  const schema = createConfigSchema({ baseDir: dirname(file), previewLimit: readPreviewLimit(substitution.value) });
  const result = schema.safeParse(substitution.value, { reportInput: true });

  const problems: ConfigProblem[] = [...substitution.problems];
  if (result.success) {
    problems.push(...checkCrossFieldRules(result.data));
  } else {
    // A key whose ${VAR} could not be substituted is reported once, for the variable.
    const envPaths = new Set(substitution.problems.map((p) => p.path));
    problems.push(...issuesToProblems(result.error.issues, substitution.substituted).filter((p) => !envPaths.has(p.path)));
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(file, problems);

  return deepFreeze({ source: file, ...result.data });
}

/**
 * server.limits.preview_bytes bounds every service's preview_bytes. If it is itself invalid it gets
 * its own error, and services are bounded by the hard maximum rather than reported a second time.
 */
function readPreviewLimit(raw: unknown): number {
  const server = field(raw, 'server');
  const parsed = serverPreviewBytes.safeParse(field(field(server, 'limits'), 'preview_bytes'));
  return parsed.success ? parsed.data : PREVIEW_BYTES_MAX;
}

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
}
