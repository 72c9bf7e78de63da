/**
 * Builders for ICAP request bytes from readable arguments (STYLE.md "Build fixtures in code";
 * node-postgres' test-buffers.ts). Offsets in Encapsulated always come from the real lengths.
 */
import { encodeRequestHead, type IcapMethod } from '../../protocol/index.js';

export interface RequestSpec {
  method?: IcapMethod;
  service?: string;
  headers?: [string, string][];
  reqHdr?: string | null;
  resHdr?: string | null;
  /** Body chunks as sent (each becomes one chunk); undefined = null-body. */
  body?: (string | Buffer)[];
  /** Send a Preview header and split the body: the first `preview` bytes, then the rest after 100. */
  preview?: number;
  trailers?: string;
}

export function httpRequestHead(url = 'http://example.com/file.bin', extra = ''): string {
  return `GET ${url} HTTP/1.1\r\nHost: example.com\r\n${extra}\r\n`;
}

export function httpResponseHead(contentLength?: number, extra = ''): string {
  const cl = contentLength === undefined ? '' : `Content-Length: ${contentLength}\r\n`;
  return `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n${cl}${extra}\r\n`;
}

/**
 * The head of a RESPMOD for `url` (ICAP headers, the HTTP request and response heads) without
 * preview, for tests that stream its chunked body themselves, e.g. bodies too large to build.
 */
export function respmodHead(url: string, resHdr: string, icapHeaders: [string, string][] = []): Buffer {
  return encodeRequestHead({
    method: 'RESPMOD',
    uri: 'icap://127.0.0.1/respmod',
    headers: [['Host', '127.0.0.1'], ...icapHeaders],
    reqHdr: Buffer.from(httpRequestHead(url)),
    resHdr: Buffer.from(resHdr),
    body: 'res-body',
  });
}

function chunk(data: Buffer, ext = ''): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}${ext}\r\n`), data, Buffer.from('\r\n')]);
}

/**
 * Returns the request in two parts: `first` (head + body, or head + preview) and `rest` (what the
 * client sends after 100 Continue; empty when there is no preview or the preview held everything).
 */
export function buildRequest(spec: RequestSpec): { first: Buffer; rest: Buffer; body: Buffer } {
  const method = spec.method ?? 'RESPMOD';
  const reqHdr = spec.reqHdr === null ? null : Buffer.from(spec.reqHdr ?? httpRequestHead(), 'latin1');
  const resHdr =
    method === 'RESPMOD' && spec.resHdr !== null ? Buffer.from(spec.resHdr ?? httpResponseHead(), 'latin1') : null;
  const bodyParts = spec.body?.map((b) => (typeof b === 'string' ? Buffer.from(b, 'latin1') : b));
  const body = Buffer.concat(bodyParts ?? []);
  const headers: [string, string][] = [['Host', '127.0.0.1'], ...(spec.headers ?? [])];
  if (spec.preview !== undefined && bodyParts) headers.push(['Preview', String(spec.preview)]);
  const bodyTag = bodyParts === undefined ? null : method === 'REQMOD' ? 'req-body' : method === 'RESPMOD' ? 'res-body' : 'opt-body';
  const head = encodeRequestHead({
    method,
    uri: `icap://127.0.0.1:1344/${spec.service ?? (method === 'REQMOD' ? 'reqmod' : 'respmod')}`,
    headers,
    reqHdr: method === 'OPTIONS' ? null : reqHdr,
    resHdr,
    body: bodyTag,
  });
  if (!bodyParts) return { first: head, rest: Buffer.alloc(0), body };
  const trailer = Buffer.from(`${spec.trailers ?? ''}\r\n`, 'latin1');
  if (spec.preview === undefined) {
    return { first: Buffer.concat([head, ...bodyParts.map((b) => chunk(b)), Buffer.from('0\r\n'), trailer]), rest: Buffer.alloc(0), body };
  }
  const previewData = body.subarray(0, spec.preview);
  const remaining = body.subarray(spec.preview);
  const previewChunks = previewData.length > 0 ? [chunk(previewData)] : [];
  if (remaining.length === 0) {
    return { first: Buffer.concat([head, ...previewChunks, Buffer.from('0; ieof\r\n'), trailer]), rest: Buffer.alloc(0), body };
  }
  return {
    first: Buffer.concat([head, ...previewChunks, Buffer.from('0\r\n\r\n')]),
    rest: Buffer.concat([chunk(remaining), Buffer.from('0\r\n'), trailer]),
    body,
  };
}

export const EICAR = Buffer.from(
  'X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*',
  'latin1',
);

/**
 * A REQMOD carrying a multipart/form-data upload of `body` (framed with `boundary`) to
 * `service`, with a 1024-byte preview and Allow: 204, as Squid sends an upload.
 */
export function formUploadRequest(body: Buffer, boundary: string, service: string): RequestSpec {
  const reqHdr = `POST http://uploads.example/form HTTP/1.1\r\nHost: uploads.example\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`;
  return { method: 'REQMOD', reqHdr, body: [body], preview: 1024, headers: [['Allow', '204']], service };
}
