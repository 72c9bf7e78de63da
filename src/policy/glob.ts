/**
 * Globs for hosts, URLs, content types and users: `*` matches any run of characters (none
 * included); every other character, `?` too, is literal — URLs are full of `?`, and a query
 * string in a pattern should mean itself.
 *
 * Matching is the two-pointer algorithm with backtracking to the last `*` only, so it runs in
 * O(pattern × text) at worst. A regular expression built from the glob (`.*a.*a.*b`) can take
 * exponential time on a long URL, and URLs come from the network.
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
  return { pattern, matches: (text) => globMatch(p, fold ? text.toLowerCase() : text) };
}

export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1; // index of the last `*` seen in the pattern
  let resume = 0; // text index that `*` is currently assumed to end at
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.length && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (star !== -1) {
      // Let the last `*` swallow one more character and retry from there.
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
