/**
 * The one error the configuration module throws. It carries every problem found in one pass, so an
 * operator fixes a file once instead of once per mistake (fastify's initial-config-validation does
 * the same), and each problem names the key path and the rule that was broken.
 */
import { CodedError } from '../errors.js';

/** One thing wrong with a configuration file. */
export interface ConfigProblem {
  /** Key path in the file, e.g. `services.reqmod.backends[0]`; '' when the problem is the whole file. */
  readonly path: string;
  /** The rule that was broken, phrased as what the value must be, with what was found. */
  readonly rule: string;
  /** 1-based position, known for YAML syntax errors only. */
  readonly line?: number;
  readonly column?: number;
}

export class ConfigError extends CodedError<'ICAP_ERR_CONFIG'> {
  /** The configuration file (absolute path) the problems were found in. */
  readonly file: string;
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[], options?: ErrorOptions) {
    super('ICAP_ERR_CONFIG', formatProblems(file, problems), options);
    this.file = file;
    this.problems = problems;
  }
}

/**
 * One line per problem, `FILE: key.path: rule`; syntax errors read `FILE:LINE:COL: rule` so editors
 * and terminals can jump to the spot.
 */
export function formatProblems(file: string, problems: readonly ConfigProblem[]): string {
  if (problems.length === 0) return `${file}: invalid configuration`;
  return problems.map((p) => formatProblem(file, p)).join('\n');
}

function formatProblem(file: string, problem: ConfigProblem): string {
  const where = problem.line === undefined ? file : `${file}:${problem.line}:${problem.column ?? 1}`;
  return problem.path === '' ? `${where}: ${problem.rule}` : `${where}: ${problem.path}: ${problem.rule}`;
}

/** Zod-style path → `services.reqmod.backends[0]`; keys that would read ambiguously are quoted. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** A short, single-line rendering of an offending value for `(got …)`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(shown);
  }
  return String(value);
}
