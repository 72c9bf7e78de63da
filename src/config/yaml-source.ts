/** YAML text → plain data, or problems carrying line and column. */
import { LineCounter, parseDocument } from 'yaml';
import type { ConfigProblem } from './errors.js';

export type YamlResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problems: ConfigProblem[] };

export function parseYaml(text: string): YamlResult {
  const lineCounter = new LineCounter();
  // YAML 1.2 core schema (yaml's default): `on`/`yes` stay strings; duplicate keys are errors.
  // prettyErrors is off because we place line and column ourselves, in the `FILE:LINE:COL:` form.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((err) => {
        const { line, col } = lineCounter.linePos(err.pos[0]);
        const message = err.code === 'MULTIPLE_DOCS' ? 'the file must hold a single YAML document' : err.message;
        return { path: '', rule: `YAML syntax error: ${message}`, line, column: col };
      }),
    };
  }
  try {
    // maxAliasCount bounds alias expansion ("billion laughs"); it throws when exceeded.
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (err) {
    return { ok: false, problems: [{ path: '', rule: `YAML error: ${(err as Error).message}` }] };
  }
}
