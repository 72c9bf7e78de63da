/**
 * Rewrites an encapsulated HTTP header block for a replaced body (a sanitized file): the framing
 * headers must describe the new bytes. Everything else is kept byte for byte, in order.
 */
export interface HeadChanges {
  contentLength: number;
  contentType?: string;
  /** The file name for Content-Disposition (kept as attachment/inline as the original said). */
  fileName?: string;
}

/** Header names that describe the old body's bytes and no longer apply. */
const DROPPED = new Set(['content-length', 'transfer-encoding', 'content-encoding', 'content-md5', 'etag', 'digest', 'content-range']);

export function rewriteHttpHead(raw: Buffer, changes: HeadChanges): Buffer {
  const lines = raw.toString('latin1').split('\r\n');
  // The block ends with CRLF CRLF, so the split leaves two empty strings at the end.
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const out: string[] = [lines[0] ?? ''];
  let disposition: string | undefined;
  // A folded (continuation) line belongs to the header above it: kept or dropped with it.
  let keepingCurrent = true;
  for (const line of lines.slice(1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (keepingCurrent) out[out.length - 1] += `\r\n${line}`;
      continue;
    }
    const name = line.slice(0, line.indexOf(':')).trim().toLowerCase();
    const replaced =
      DROPPED.has(name) ||
      (name === 'content-type' && changes.contentType !== undefined) ||
      (name === 'content-disposition' && changes.fileName !== undefined);
    if (name === 'content-disposition' && changes.fileName !== undefined) disposition = line.slice(line.indexOf(':') + 1).trim();
    keepingCurrent = !replaced;
    if (keepingCurrent) out.push(line);
  }
  if (changes.contentType !== undefined) out.push(`Content-Type: ${safe(changes.contentType)}`);
  if (changes.fileName !== undefined) {
    const kind = disposition !== undefined && /^inline\b/i.test(disposition) ? 'inline' : 'attachment';
    const ascii = safe(changes.fileName).replace(/["\\]/g, '_');
    // RFC 6266: a plain ASCII fallback plus the UTF-8 form for names outside ASCII.
    out.push(`Content-Disposition: ${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(changes.fileName)}`);
  }
  out.push(`Content-Length: ${changes.contentLength}`);
  return Buffer.from(`${out.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** Engine-supplied text in a header: printable ASCII only. */
function safe(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '_');
}
