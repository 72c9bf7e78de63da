/**
 * The file name X-Violations-Found reports for a blocked object (icap-extensions.md §B: the first of
 * the four continuation lines per violation). We only know the request URL, so the name is its last
 * non-empty path segment, percent-decoded, then made header-safe like a threat name.
 */
import { sanitizeHeaderText } from './threat-name.js';

/** What X-Violations-Found says when the URL gives no file name. */
export const NO_FILE_NAME = '-';

const SCHEME_AND_AUTHORITY = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i;

/** Last non-empty path segment of an absolute or origin-form URL, decoded and sanitized; else `-`. */
export function fileNameFromUrl(url: string): string {
  // Query and fragment first: neither can occur inside the authority, and both may contain `/`.
  const cut = url.search(/[?#]/);
  let path = cut === -1 ? url : url.slice(0, cut);
  path = path.replace(SCHEME_AND_AUTHORITY, '');
  // Not a path (authority-form "host:443" of CONNECT, or garbage): no file name to report.
  if (!path.startsWith('/')) return NO_FILE_NAME;
  const segments = path.split('/').filter((s) => s !== '');
  const last = segments[segments.length - 1];
  if (last === undefined) return NO_FILE_NAME;
  const name = sanitizeHeaderText(percentDecode(last));
  return name === '' ? NO_FILE_NAME : name;
}

/** decodeURIComponent, tolerating malformed escapes and invalid UTF-8 (a client's URL is untrusted). */
function percentDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    // Decode each well-formed %XX on its own; bytes outside ASCII cannot be shown anyway, so they
    // become `?` here rather than guessing an encoding.
    return segment.replace(/%([0-9a-f]{2})/gi, (_m, hex: string) => {
      const byte = Number.parseInt(hex, 16);
      return byte < 0x80 ? String.fromCharCode(byte) : '?';
    });
  }
}
