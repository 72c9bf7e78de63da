/** Request attributes for policy tests, built the way the transaction builds them. */
import { HeaderList } from '../../protocol/index.js';
import { requestAttributes, type RequestAttributes } from '../../src/policy/index.js';

const headers = (pairs: [string, string][] = []): HeaderList => new HeaderList(pairs.map(([name, value]) => ({ name, value })));

export interface AttrSpec {
  icapMethod?: 'REQMOD' | 'RESPMOD';
  peer?: string;
  icap?: [string, string][];
  /** Request line, e.g. `GET http://example.com/x HTTP/1.1`; null: no req-hdr. */
  requestLine?: string | null;
  request?: [string, string][];
  /** Response headers; null: no res-hdr. */
  response?: [string, string][] | null;
  /** The response's status line (default `HTTP/1.1 200 OK`). */
  statusLine?: string;
}

export function attrs(spec: AttrSpec = {}): RequestAttributes {
  const requestLine = spec.requestLine === undefined ? 'GET http://example.com/file.bin HTTP/1.1' : spec.requestLine;
  return requestAttributes({
    icapMethod: spec.icapMethod ?? 'RESPMOD',
    peer: spec.peer ?? '127.0.0.1',
    icapHeaders: headers(spec.icap),
    reqHdr: requestLine === null ? null : { startLine: requestLine, headers: headers(spec.request ?? [['Host', 'example.com']]) },
    resHdr: spec.response === null ? null : { startLine: spec.statusLine ?? 'HTTP/1.1 200 OK', headers: headers(spec.response ?? []) },
  });
}
