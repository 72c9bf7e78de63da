/**
 * Benchmark scenarios: each builds the bytes of one ICAP request once, for a given target.
 * The load generator writes these same Buffers on every request (no per-request building).
 * Shapes follow RFC 3507 §4.4 (Encapsulated), §4.5 (Preview), §4.6 (Allow: 204), §4.10 (OPTIONS).
 */

export interface Target {
  host: string;
  port: number;
  service: string;
}

export interface ScenarioOptions {
  /** Preview size in bytes for body scenarios; undefined = no preview. */
  preview?: number | undefined;
}

export interface BuiltRequest {
  scenario: ScenarioName;
  /** The whole request, for requests without preview. */
  full: Buffer;
  /**
   * With a preview: `first` is the head, encapsulated headers and the preview chunk(s) ending
   * in `0\r\n\r\n` (or `0; ieof\r\n\r\n` when the body fits in the preview, in which case `rest`
   * is null and no 100 Continue is expected); `rest` is sent after 100 Continue.
   */
  preview: { first: Buffer; rest: Buffer | null } | null;
  /** Encapsulated body length (0 when none). */
  bodyBytes: number;
}

export const SCENARIO_NAMES = ['options', 'reqmod-null', 'respmod-4k', 'respmod-1m'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function isScenarioName(s: string): s is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(s);
}

const USER_AGENT = 'icap-bridge-bench/0.1';
const BODY_CHUNK = 64 * 1024;

function icapUri(t: Target): string {
  return `icap://${t.host}:${t.port}/${t.service}`;
}

function latin1(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** The small GET request head used as `req-hdr` in every REQMOD/RESPMOD scenario. */
function httpRequestHead(): string {
  return (
    'GET http://bench.example.test/files/object.txt HTTP/1.1\r\n' +
    'Host: bench.example.test\r\n' +
    'Accept: */*\r\n' +
    `User-Agent: ${USER_AGENT}\r\n` +
    '\r\n'
  );
}

function httpResponseHead(bodyBytes: number): string {
  return (
    'HTTP/1.1 200 OK\r\n' +
    'Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n' +
    'Content-Type: text/plain\r\n' +
    `Content-Length: ${bodyBytes}\r\n` +
    '\r\n'
  );
}

/** Deterministic printable text (no signature of anything), `size` bytes. */
export function cleanBody(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  for (let line = 0; off < size; line++) {
    const text = `line ${String(line).padStart(6, '0')} the quick brown fox jumps over the lazy dog 0123456789\n`;
    off += out.write(text, off, 'latin1');
  }
  return out;
}

/** Frames `body` as chunks of at most `chunk` bytes, without the last-chunk. */
function chunked(body: Buffer, chunk: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let off = 0; off < body.length; off += chunk) {
    const piece = body.subarray(off, Math.min(off + chunk, body.length));
    parts.push(latin1(`${piece.length.toString(16)}\r\n`), piece, latin1('\r\n'));
  }
  return parts;
}

export function buildOptions(t: Target): BuiltRequest {
  const full = latin1(
    `OPTIONS ${icapUri(t)} ICAP/1.0\r\n` +
      `Host: ${t.host}:${t.port}\r\n` +
      `User-Agent: ${USER_AGENT}\r\n` +
      'Encapsulated: null-body=0\r\n' +
      '\r\n',
  );
  return { scenario: 'options', full, preview: null, bodyBytes: 0 };
}

export function buildReqmodNull(t: Target): BuiltRequest {
  const reqHdr = httpRequestHead();
  const full = latin1(
    `REQMOD ${icapUri(t)} ICAP/1.0\r\n` +
      `Host: ${t.host}:${t.port}\r\n` +
      `User-Agent: ${USER_AGENT}\r\n` +
      'Allow: 204\r\n' +
      `Encapsulated: req-hdr=0, null-body=${Buffer.byteLength(reqHdr, 'latin1')}\r\n` +
      '\r\n' +
      reqHdr,
  );
  return { scenario: 'reqmod-null', full, preview: null, bodyBytes: 0 };
}

/** RESPMOD with a clean text body of `bodyBytes`, chunked in `chunk`-byte chunks. */
export function buildRespmod(
  t: Target,
  scenario: ScenarioName,
  bodyBytes: number,
  chunk: number,
  opts: ScenarioOptions,
): BuiltRequest {
  const reqHdr = httpRequestHead();
  const resHdr = httpResponseHead(bodyBytes);
  const reqLen = Buffer.byteLength(reqHdr, 'latin1');
  const resLen = Buffer.byteLength(resHdr, 'latin1');
  const preview = opts.preview;
  const head = latin1(
    `RESPMOD ${icapUri(t)} ICAP/1.0\r\n` +
      `Host: ${t.host}:${t.port}\r\n` +
      `User-Agent: ${USER_AGENT}\r\n` +
      'Allow: 204\r\n' +
      (preview !== undefined ? `Preview: ${preview}\r\n` : '') +
      `Encapsulated: req-hdr=0, res-hdr=${reqLen}, res-body=${reqLen + resLen}\r\n` +
      '\r\n' +
      reqHdr +
      resHdr,
  );
  const body = cleanBody(bodyBytes);
  const lastChunk = latin1('0\r\n\r\n');
  if (preview === undefined) {
    const full = Buffer.concat([head, ...chunked(body, chunk), lastChunk]);
    return { scenario, full, preview: null, bodyBytes };
  }
  if (!Number.isInteger(preview) || preview < 0) throw new RangeError(`bad preview size ${preview}`);
  if (preview >= bodyBytes) {
    // The whole body fits in the preview: mark the end with ieof; no 100 Continue (§4.5).
    const first = Buffer.concat([head, ...chunked(body, chunk), latin1('0; ieof\r\n\r\n')]);
    return { scenario, full: first, preview: { first, rest: null }, bodyBytes };
  }
  const first = Buffer.concat([head, ...chunked(body.subarray(0, preview), chunk), lastChunk]);
  const rest = Buffer.concat([...chunked(body.subarray(preview), chunk), lastChunk]);
  return { scenario, full: Buffer.concat([first, rest]), preview: { first, rest }, bodyBytes };
}

export function buildScenario(name: ScenarioName, t: Target, opts: ScenarioOptions = {}): BuiltRequest {
  switch (name) {
    case 'options':
      return buildOptions(t);
    case 'reqmod-null':
      return buildReqmodNull(t);
    case 'respmod-4k':
      return buildRespmod(t, name, 4096, BODY_CHUNK, opts);
    case 'respmod-1m':
      return buildRespmod(t, name, 1024 * 1024, BODY_CHUNK, opts);
    default: {
      const never: never = name;
      throw new Error(`unknown scenario ${String(never)}`);
    }
  }
}
