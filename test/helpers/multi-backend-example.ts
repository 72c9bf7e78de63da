/**
 * config/examples/multi-backend.yaml as tests use it when they point its endpoints elsewhere.
 *
 * `weights` keys name endpoints as they read after ${...} substitution, but substitution never
 * touches keys, so a test that sets MD_CORE_n to local emulators renames the keys to match — the
 * one edit an operator overriding MD_CORE_n also has to make (the example says so).
 */
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { ROOT } from './child-server.js';

export const MULTI_BACKEND_EXAMPLE = join(ROOT, 'config/examples/multi-backend.yaml');

/** The example's text with backends.core.weights keys renamed (`from` URL → `to` URL); comments kept. */
export function withCoreWeightsRenamed(text: string, rename: Readonly<Record<string, string>>): string {
  const doc = parseDocument(text);
  const weights = (doc.getIn(['backends', 'core', 'weights']) as { toJSON(): Record<string, number> }).toJSON();
  const renamed = Object.fromEntries(Object.entries(weights).map(([url, w]) => [rename[url] ?? url, w]));
  doc.setIn(['backends', 'core', 'weights'], doc.createNode(renamed));
  return doc.toString();
}
