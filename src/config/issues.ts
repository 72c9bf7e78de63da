/** Zod issues → ConfigProblems: one per broken rule, with the key path and, where useful, the value found. */
import type * as z from 'zod';
import { describeValue, formatKeyPath, type ConfigProblem } from './errors.js';

// Issues about a value that is wrong in itself; the value found helps. Others (unknown keys,
// bad map keys, custom checks) already say everything in their message.
const SHOW_VALUE = new Set(['invalid_type', 'too_big', 'too_small', 'invalid_value', 'invalid_format', 'not_multiple_of']);

export function issuesToProblems(
  issues: readonly z.core.$ZodIssue[],
  substituted: ReadonlyMap<string, readonly string[]>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      // Zod reports all unknown keys of one mapping together; an operator wants each one named.
      for (const key of issue.keys) problems.push({ path: formatKeyPath([...issue.path, key]), rule: issue.message });
      continue;
    }
    const path = formatKeyPath(issue.path);
    const found = foundValue(issue);
    if (found === undefined) {
      problems.push({ path, rule: issue.message });
      continue;
    }
    // A value that came from the environment may be a secret: name the variable, not the value.
    const vars = substituted.get(path);
    const shown = vars === undefined ? describeValue(found.value) : `the value of ${vars.map((v) => `\${${v}}`).join(', ')}`;
    problems.push({ path, rule: `${issue.message} (got ${shown})` });
  }
  return problems;
}

function foundValue(issue: z.core.$ZodIssue): { value: unknown } | undefined {
  if (SHOW_VALUE.has(issue.code)) return { value: issue.input };
  if (issue.code === 'custom' && issue.params?.['showValue'] === true) return { value: issue.input };
  // A failed discriminator is reported at `….type` with the whole mapping as input.
  if (issue.code === 'invalid_union' && 'discriminator' in issue && typeof issue.discriminator === 'string') {
    const input = issue.input;
    return { value: input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[issue.discriminator] : undefined };
  }
  return undefined;
}
