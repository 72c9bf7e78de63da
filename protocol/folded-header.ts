/**
 * A header's physical lines, for headers whose folding carries structure. RFC 2616 §2.2 says a
 * folded value means the same as one joined with spaces (HeaderList does that), but the ICAP
 * extensions draft gives `X-Violations-Found` four continuation lines per violation (file name,
 * threat, problem id, resolution; shared/specs/icap-extensions.md §B), and a threat name may
 * contain spaces: only the line breaks tell the fields apart.
 */

/**
 * For every occurrence of header `name` in `raw` (a whole head, latin1 bytes or text), the first
 * line's value followed by each continuation line, all trimmed. Case-insensitive; the first line
 * of `raw` (status or request line) is never taken for a header.
 */
export function foldedHeaderLines(raw: Buffer | string, name: string): string[][] {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const lines = text.split('\r\n');
  const wanted = name.toLowerCase();
  const out: string[][] = [];
  let current: string[] | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') break; // end of the head
    const folded = line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09;
    if (folded) {
      current?.push(line.trim());
      continue;
    }
    const colon = line.indexOf(':');
    current = colon > 0 && line.slice(0, colon).toLowerCase() === wanted ? [line.slice(colon + 1).trim()] : null;
    if (current !== null) out.push(current);
  }
  return out;
}
