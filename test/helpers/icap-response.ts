/**
 * A small, strict parser for ICAP responses, for tests: status line, ICAP headers, the
 * encapsulated HTTP header blocks per Encapsulated, and the chunked body with extensions.
 */
export interface ParsedResponse {
  status: number;
  reason: string;
  headers: Map<string, string[]>;
  header(name: string): string | undefined;
  encapsulated: string;
  reqHdr: string | null;
  resHdr: string | null;
  body: Buffer | null;
  /** Extension of the last chunk, e.g. `use-original-body=0`. */
  lastChunkExtension: string | null;
  trailers: string | null;
  /** Bytes this response occupied in the input. */
  length: number;
}

/** Returns the parsed response and its length, or null if `buf` does not hold a complete one yet. */
export function parseResponse(buf: Buffer): ParsedResponse | null {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd === -1) return null;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const m = /^ICAP\/1\.0 (\d{3}) ?(.*)$/.exec(lines[0]!);
  if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string[]>();
  let lastName = '';
  for (const line of lines.slice(1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const values = headers.get(lastName)!;
      values[values.length - 1] += `\r\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    lastName = line.slice(0, colon).toLowerCase();
    const list = headers.get(lastName) ?? [];
    list.push(line.slice(colon + 1).trim());
    headers.set(lastName, list);
  }
  let pos = headEnd + 4;
  const status = Number(m[1]);
  const encapsulated = headers.get('encapsulated')?.[0] ?? '';
  const result: ParsedResponse = {
    status,
    reason: m[2]!,
    headers,
    header: (name) => headers.get(name.toLowerCase())?.[0],
    encapsulated,
    reqHdr: null,
    resHdr: null,
    body: null,
    lastChunkExtension: null,
    trailers: null,
    length: pos,
  };
  if (status === 100 || encapsulated === '') return result;
  const sections = encapsulated.split(',').map((p) => {
    const [name, off] = p.trim().split('=');
    return { name: name!, offset: Number(off) };
  });
  const base = pos;
  for (let i = 0; i < sections.length - 1; i++) {
    const s = sections[i]!;
    const end = base + sections[i + 1]!.offset;
    if (buf.length < end) return null;
    const text = buf.toString('latin1', base + s.offset, end);
    if (s.name === 'req-hdr') result.reqHdr = text;
    else result.resHdr = text;
  }
  const last = sections[sections.length - 1]!;
  pos = base + last.offset;
  if (buf.length < pos) return null;
  if (last.name === 'null-body') {
    result.length = pos;
    return result;
  }
  const parts: Buffer[] = [];
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', pos);
    if (lineEnd === -1) return null;
    const line = buf.toString('latin1', pos, lineEnd);
    const [sizeText, ...ext] = line.split(';');
    const size = parseInt(sizeText!.trim(), 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk line ${JSON.stringify(line)}`);
    pos = lineEnd + 2;
    if (size === 0) {
      result.lastChunkExtension = ext.length ? ext.join(';').trim() : null;
      const trailerEnd = buf.indexOf('\r\n', pos) === pos ? pos : buf.indexOf('\r\n\r\n', pos);
      if (trailerEnd === -1) return null;
      if (trailerEnd > pos) result.trailers = buf.toString('latin1', pos, trailerEnd + 2);
      pos = trailerEnd === pos ? pos + 2 : trailerEnd + 4;
      break;
    }
    if (buf.length < pos + size + 2) return null;
    parts.push(buf.subarray(pos, pos + size));
    pos += size + 2;
  }
  result.body = Buffer.concat(parts);
  result.length = pos;
  return result;
}
