/** multipart/form-data bodies built from readable arguments (STYLE.md "Build fixtures in code"). */

export interface FormPart {
  /** Content-Disposition name; omit for no Content-Disposition at all. */
  readonly name?: string;
  readonly fileName?: string;
  /** Sent raw as `filename*=` (an RFC 8187 ext-value). */
  readonly fileNameStar?: string;
  readonly contentType?: string;
  /** Extra header lines, without CRLF. */
  readonly headers?: readonly string[];
  readonly body: string | Uint8Array;
}

export interface FormOptions {
  readonly preamble?: string;
  readonly epilogue?: string;
  /** False leaves out the close delimiter (a truncated upload). */
  readonly close?: boolean;
}

/** RFC 7578 framing as browsers write it: CRLF line ends, `--boundary--` at the end. */
export function formData(boundary: string, parts: readonly FormPart[], opts: FormOptions = {}): Buffer {
  const pieces: Buffer[] = [];
  if (opts.preamble !== undefined) pieces.push(Buffer.from(opts.preamble));
  for (const [i, part] of parts.entries()) {
    pieces.push(Buffer.from(`${i === 0 && opts.preamble === undefined ? '' : '\r\n'}--${boundary}\r\n`));
    const lines: string[] = [];
    if (part.name !== undefined) {
      let disposition = `form-data; name="${part.name}"`;
      if (part.fileName !== undefined) disposition += `; filename="${part.fileName}"`;
      if (part.fileNameStar !== undefined) disposition += `; filename*=${part.fileNameStar}`;
      lines.push(`Content-Disposition: ${disposition}`);
    }
    if (part.contentType !== undefined) lines.push(`Content-Type: ${part.contentType}`);
    lines.push(...(part.headers ?? []));
    pieces.push(Buffer.from(lines.map((l) => `${l}\r\n`).join('') + '\r\n', 'utf8'));
    pieces.push(Buffer.from(part.body));
  }
  if (opts.close !== false) {
    const lead = parts.length === 0 && opts.preamble === undefined ? '' : '\r\n';
    pieces.push(Buffer.from(`${lead}--${boundary}--\r\n`));
    if (opts.epilogue !== undefined) pieces.push(Buffer.from(opts.epilogue));
  }
  return Buffer.concat(pieces);
}

/** Base64 as MIME writers send it (RFC 2045 §6.8): lines of at most `width` characters, CRLF between. */
export function base64Lines(bytes: Uint8Array, width = 76): string {
  const text = Buffer.from(bytes).toString('base64');
  const lines: string[] = [];
  for (let at = 0; at < text.length; at += width) lines.push(text.slice(at, at + width));
  return lines.join('\r\n');
}
