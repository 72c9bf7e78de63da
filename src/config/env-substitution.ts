/**
 * `${NAME}` / `${NAME:-default}` in string values, replaced from the environment before validation
 * so secrets (API keys, passwords) need not be written into the file.
 *
 * Only string values are touched, and the result is always a string: a secret such as
 * `${PASSWORD}` = "123456" must not silently turn into a number. Keys are left alone, with one
 * exception: the keys of a pool's `weights` (`backends.<name>.weights`) are endpoint texts, and an
 * endpoint written `${CLAMD_HOST}:3310` must be weighted by the same text, so those keys are
 * substituted as the endpoints are (two keys that come out the same are an error).
 * `${NAME:-default}` uses the default when NAME is unset or empty, as the shell does. `$${` writes a
 * literal `${`; a lone `$` is left alone so passwords like "pa$$word" survive. A default may not
 * hold another reference (`${A:-${B}}`): the first `}` would end the outer one and the value would
 * silently be `${B` plus a stray `}`, so it is an error naming the key.
 */
import { formatKeyPath, type ConfigProblem } from './errors.js';

export interface SubstitutionResult {
  readonly value: unknown;
  readonly problems: ConfigProblem[];
  /**
   * Key path → variables substituted there. Validation messages print the offending value; for
   * these paths they name the variable instead, so a secret never reaches a log.
   */
  readonly substituted: ReadonlyMap<string, readonly string[]>;
}

// Alternatives, tried left to right at each `$`: the escape, a complete reference, an unclosed one.
const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/** `backends.<name>.weights`: a mapping whose keys are endpoint texts. */
function isPoolWeights(path: readonly PropertyKey[]): boolean {
  return path.length === 3 && path[0] === 'backends' && path[2] === 'weights';
}

export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv): SubstitutionResult {
  const problems: ConfigProblem[] = [];
  const substituted = new Map<string, string[]>();

  const visit = (node: unknown, path: PropertyKey[]): unknown => {
    if (typeof node === 'string') return substituteString(node, path);
    if (Array.isArray(node)) return node.map((item, i) => visit(item, [...path, i]));
    if (node !== null && typeof node === 'object') {
      const entries = Object.entries(node);
      // fromEntries defines own properties, so a `__proto__` key stays a key (and gets reported)
      // instead of replacing the object's prototype as `out[key] = …` would.
      if (isPoolWeights(path)) return Object.fromEntries(weightEntries(entries, path));
      return Object.fromEntries(entries.map(([key, item]) => [key, visit(item, [...path, key])]));
    }
    return node;
  };

  /** A pool's weights with their endpoint keys substituted; a key that comes out as an earlier one is reported. */
  const weightEntries = (entries: [string, unknown][], path: PropertyKey[]): [string, unknown][] => {
    const seen = new Set<string>();
    return entries.map(([key, item]) => {
      const endpoint = substituteString(key, [...path, key]);
      if (seen.has(endpoint)) problems.push({ path: formatKeyPath([...path, key]), rule: `names endpoint "${endpoint}" again` });
      seen.add(endpoint);
      return [endpoint, visit(item, [...path, endpoint])];
    });
  };

  const substituteString = (text: string, path: PropertyKey[]): string => {
    if (!text.includes('${')) return text;
    const keyPath = formatKeyPath(path);
    const names: string[] = [];
    const result = text.replace(REFERENCE, (match: string, body: string | undefined) => {
      if (match === '$${') return '${';
      if (body === undefined) {
        problems.push({ path: keyPath, rule: 'unclosed "${" (write "$${" for a literal "${")' });
        return match;
      }
      const parsed = BODY.exec(body);
      if (parsed === null) {
        problems.push({
          path: keyPath,
          rule: `malformed reference "${match}": expected \${NAME} or \${NAME:-default}, NAME of letters, digits and _`,
        });
        return match;
      }
      const name = parsed[1] as string;
      const fallback = parsed[2];
      if (fallback?.includes('${') === true) {
        problems.push({ path: keyPath, rule: `nested reference in the default of \${${name}:-…}: not supported, write the default literally` });
        return match;
      }
      const current = env[name];
      names.push(name);
      if (fallback !== undefined) return current === undefined || current === '' ? fallback : current;
      if (current === undefined) {
        problems.push({
          path: keyPath,
          rule: `environment variable ${name} is not set (write \${${name}:-default} to give a fallback)`,
        });
        return match;
      }
      return current;
    });
    if (names.length > 0) substituted.set(keyPath, names);
    return result;
  };

  return { value: visit(value, []), problems, substituted };
}
