/**
 * Making engine-supplied text safe for an ICAP header value.
 *
 * Threat names come from other programs (clamd replies, MetaDefender JSON, upstream ICAP headers) and
 * end up in `X-Infection-Found`, `X-Violations-Found` and `X-Virus-ID`. A CR or LF there would let an
 * engine (or a file crafted to make an engine echo it) inject ICAP headers, so nothing but printable
 * ASCII leaves this module.
 */

/** Longest threat name we put in a header; engines' real names are far shorter. */
export const MAX_THREAT_NAME_LENGTH = 200;

/** What a threat is called when the engine gave no usable name. */
export const UNKNOWN_THREAT = 'Unknown-Threat';

// C0 controls (CR, LF, NUL, TAB, ...), DEL, and C1 controls (U+0080–U+009F, e.g. NEL U+0085).
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;
// icap-extensions.md §B: X-Infection-Found's threat text ends at `;` and MUST NOT contain one;
// it SHOULD NOT be quoted, so `"` goes too.
const DELIMITERS = /[;"]/g;
// Any Unicode whitespace (NBSP, em space, U+2028...) counts as a separator before the ASCII pass.
const WHITESPACE_RUN = /\s+/g;
// Printable ASCII, the only characters left in a header value (RFC 3507 §4.3 uses RFC 2616 field-value).
const PRINTABLE_ASCII = /^[\x20-\x7e]$/;

/**
 * Header-safe text that may come out empty: controls, `;` and `"` removed, whitespace runs collapsed
 * to one space, trimmed, every other non-printable-ASCII code point replaced by `?`, capped at
 * {@link MAX_THREAT_NAME_LENGTH} characters.
 */
export function sanitizeHeaderText(raw: string): string {
  const collapsed = raw.replace(CONTROL_CHARS, '').replace(DELIMITERS, '').replace(WHITESPACE_RUN, ' ').trim();
  let out = '';
  // for..of walks code points, so an emoji (a surrogate pair) becomes one `?`, not two.
  for (const ch of collapsed) {
    if (out.length >= MAX_THREAT_NAME_LENGTH) break;
    out += PRINTABLE_ASCII.test(ch) ? ch : '?';
  }
  // The cap may have cut just after a space.
  return out.trimEnd();
}

/** A threat name ready for any header value; never empty (falls back to {@link UNKNOWN_THREAT}). */
export function sanitizeThreatName(raw: string): string {
  const clean = sanitizeHeaderText(raw);
  return clean === '' ? UNKNOWN_THREAT : clean;
}
