/**
 * Globs for hosts, URLs, content types and users: `*` matches any run of characters (none
 * included); every other character, `?` too, is literal — URLs are full of `?`, and a query
 * string in a pattern should mean itself.
 *
 * A glob is its literal pieces with a `*` between each two: the first piece must start the text,
 * the last end it, and each one between is taken where it first occurs after the one before,
 * which leaves the most room for the rest. No backtracking, so O(pattern × text) at worst. A
 * regular expression built from the glob (`.*a.*a.*b`) can take exponential time on a long URL,
 * and URLs come from the network.
 */

export interface Glob {
  readonly pattern: string;
  matches(text: string): boolean;
}

/**
 * `caseInsensitive`: both sides are compared lower-cased (hosts, media types, user names). Give it
 * text (match-text.ts), not head bytes: lower-casing bytes folds UTF-8 lead bytes (0xC3 → 0xE3).
 */
export function compileGlob(pattern: string, opts: { caseInsensitive?: boolean } = {}): Glob {
  const fold = opts.caseInsensitive === true;
  const p = fold ? pattern.toLowerCase() : pattern;
  if (!p.includes('*')) return { pattern, matches: (text) => (fold ? text.toLowerCase() : text) === p };
  const pieces = p.split('*');
  return { pattern, matches: (text) => piecesMatch(pieces, fold ? text.toLowerCase() : text) };
}

/**
 * A glob given as its literal pieces (`a*b` is `['a', 'b']`), for patterns whose text may itself
 * hold `*` as a character: a URL glob's loose reading decodes the entry's `%2A` into a star that
 * is text, not a wildcard (url-forms.ts).
 */
export function compileGlobPieces(pieces: readonly string[]): Glob {
  return { pattern: pieces.join('*'), matches: (text) => piecesMatch(pieces, text) };
}

export function globMatch(pattern: string, text: string): boolean {
  return piecesMatch(pattern.split('*'), text);
}

function piecesMatch(pieces: readonly string[], text: string): boolean {
  const first = pieces[0]!;
  if (pieces.length === 1) return text === first;
  const last = pieces[pieces.length - 1]!;
  const end = text.length - last.length; // where the last piece must begin
  if (end < first.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let t = first.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i]!;
    const at = text.indexOf(piece, t);
    if (at === -1 || at + piece.length > end) return false;
    t = at + piece.length;
  }
  return true;
}
