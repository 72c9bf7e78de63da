/** Each malformed or over-limit input → one coded error with its ICAP status (STYLE.md testParseError). */
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, type DecoderLimits } from '../../protocol/index.js';
import { decodePieces, splitAt } from '../helpers/decode.js';
import { buildRequest, httpRequestHead } from '../helpers/icap-messages.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const small: DecoderLimits = { ...DEFAULT_LIMITS, icapHeaderBytes: 512, httpHeaderBytes: 256, headerCount: 10, chunkLineBytes: 32, bodyBytes: 1000, previewBytes: 100 };

const reqHdr = httpRequestHead();
const cases: [string, Buffer, string, number, DecoderLimits?][] = [
  ['garbage request line', b('HELLO\r\n\r\n'), 'ICAP_ERR_MALFORMED', 400],
  ['HTTP instead of ICAP', b('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'ICAP_ERR_MALFORMED', 400],
  ['ICAP/2.0', b('OPTIONS icap://h/s ICAP/2.0\r\n\r\n'), 'ICAP_ERR_VERSION', 505],
  ['ICAP/1.1', b('OPTIONS icap://h/s ICAP/1.1\r\n\r\n'), 'ICAP_ERR_VERSION', 505],
  ['unknown method', b('LOG icap://h/s ICAP/1.0\r\n\r\n'), 'ICAP_ERR_UNKNOWN_METHOD', 501],
  ['header without colon', b('OPTIONS icap://h/s ICAP/1.0\r\nHost\r\n\r\n'), 'ICAP_ERR_MALFORMED', 400],
  ['continuation first', b('OPTIONS icap://h/s ICAP/1.0\r\n x\r\n\r\n'), 'ICAP_ERR_MALFORMED', 400],
  ['REQMOD without Encapsulated', b('REQMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\r\n'), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['res-hdr in REQMOD', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: res-hdr=0, res-body=10\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['RESPMOD sections out of order', b(`RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: res-hdr=0, req-hdr=10, res-body=20\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['two bodies', b(`RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: res-body=0, null-body=0\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['first offset not 0', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=5, null-body=40\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['offsets decreasing', b(`RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, res-hdr=0, res-body=9\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['unknown tag', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: foo-hdr=0\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['REQMOD null-body only', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: null-body=0\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['offset shorter than the real block', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=${reqHdr.length - 2}\r\n\r\n${reqHdr}`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['offset longer than the real block', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, req-body=${reqHdr.length + 3}\r\n\r\n${reqHdr}3\r\nabc\r\n0\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED', 400],
  ['ICAP header block over the limit', b(`OPTIONS icap://h/s ICAP/1.0\r\nX: ${'a'.repeat(600)}\r\n\r\n`), 'ICAP_ERR_HEADER_TOO_LARGE', 400, small],
  ['ICAP header block over the limit, never terminated', b(`OPTIONS icap://h/s ICAP/1.0\r\nX: ${'a'.repeat(600)}`), 'ICAP_ERR_HEADER_TOO_LARGE', 400, small],
  ['HTTP header block over the limit', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=300\r\n\r\n`), 'ICAP_ERR_HEADER_TOO_LARGE', 400, small],
  ['too many ICAP headers', b(`OPTIONS icap://h/s ICAP/1.0\r\n${'X-A: 1\r\n'.repeat(11)}\r\n`), 'ICAP_ERR_TOO_MANY_HEADERS', 400, small],
  ['too many HTTP headers', buildRequest({ method: 'REQMOD', reqHdr: `GET / HTTP/1.1\r\n${'X-A: 1\r\n'.repeat(11)}\r\n` }).first, 'ICAP_ERR_TOO_MANY_HEADERS', 400, small],
  // The HTTP heads' headers are parsed on first use, but checked on arrival: the same errors as the ICAP head's.
  ['HTTP header without colon', buildRequest({ method: 'REQMOD', reqHdr: 'GET / HTTP/1.1\r\nHost\r\n\r\n' }).first, 'ICAP_ERR_MALFORMED', 400],
  ['HTTP header name not a token', buildRequest({ method: 'REQMOD', reqHdr: 'GET / HTTP/1.1\r\nBad Name: x\r\n\r\n' }).first, 'ICAP_ERR_MALFORMED', 400],
  ['HTTP header with an empty name', buildRequest({ reqHdr: 'GET / HTTP/1.1\r\n\r\n', resHdr: 'HTTP/1.1 200 OK\r\n: x\r\n\r\n' }).first, 'ICAP_ERR_MALFORMED', 400],
  ['HTTP continuation first', buildRequest({ method: 'REQMOD', reqHdr: 'GET / HTTP/1.1\r\n x\r\n\r\n' }).first, 'ICAP_ERR_MALFORMED', 400],
  ['HTTP head without a start line', buildRequest({ method: 'REQMOD', reqHdr: '\r\nHost: x\r\n\r\n' }).first, 'ICAP_ERR_MALFORMED', 400],
  ['chunk line too long', Buffer.concat([buildRequest({ method: 'REQMOD' }).first.subarray(0, 0), b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-body=0\r\n\r\n${'0'.repeat(40)}1\r\n`)]), 'ICAP_ERR_CHUNK_LINE_TOO_LONG', 400, small],
  ['chunk line never terminated', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-body=0\r\n\r\n${'1'.repeat(40)}`), 'ICAP_ERR_CHUNK_LINE_TOO_LONG', 400, small],
  ['non-hex chunk size', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-body=0\r\n\r\nzz\r\n`), 'ICAP_ERR_MALFORMED', 400],
  ['empty chunk size', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-body=0\r\n\r\n\r\n`), 'ICAP_ERR_MALFORMED', 400],
  ['chunk data without CRLF', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-body=0\r\n\r\n3\r\nabcd\r\n`), 'ICAP_ERR_MALFORMED', 400],
  ['huge declared chunk', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-body=0\r\n\r\nffffffffffffffffff\r\n`), 'ICAP_ERR_BODY_TOO_LARGE', 413],
  ['body over the limit', buildRequest({ method: 'REQMOD', body: ['a'.repeat(600), 'b'.repeat(600)] }).first, 'ICAP_ERR_BODY_TOO_LARGE', 413, small],
  ['Preview above the limit', buildRequest({ body: ['a'], preview: 101 }).first, 'ICAP_ERR_BAD_PREVIEW', 400, small],
  ['malformed Preview', b(`RESPMOD icap://h/s ICAP/1.0\r\nPreview: -1\r\nEncapsulated: res-body=0\r\n\r\n`), 'ICAP_ERR_BAD_PREVIEW', 400],
  ['more preview data than announced', b(`RESPMOD icap://h/s ICAP/1.0\r\nPreview: 2\r\nEncapsulated: res-body=0\r\n\r\n3\r\nabc\r\n0\r\n\r\n`), 'ICAP_ERR_BAD_PREVIEW', 400],
  ['trailers over the limit', b(`REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-body=0\r\n\r\n0\r\nX: ${'a'.repeat(300)}\r\n\r\n`), 'ICAP_ERR_HEADER_TOO_LARGE', 400, small],
];

describe.each(cases)('%s', (_name, bytes, code, status, limits) => {
  it(`fails with ${code} (${status}), whole and split at every offset`, () => {
    expect(decodePieces([bytes], limits).error).toEqual({ code, status });
    for (let i = 1; i < bytes.length; i++) {
      expect(decodePieces(splitAt(bytes, i), limits).error, `split at ${i}`).toEqual({ code, status });
    }
  });
});

describe('limits are checked while parsing, not after', () => {
  it('rejects an endless header block once it passes the limit, without waiting for its end', () => {
    const start = b('OPTIONS icap://h/s ICAP/1.0\r\nX: ');
    const pieces = [start, ...Array.from({ length: 100 }, () => b('a'.repeat(10)))];
    expect(decodePieces(pieces, small).error?.code).toBe('ICAP_ERR_HEADER_TOO_LARGE');
  });

  it('ignores empty lines between requests (RFC 2616 §4.1 robustness)', () => {
    const r = decodePieces([b('\r\n\r\nOPTIONS icap://h/s ICAP/1.0\r\n\r\n')]);
    expect(r.error).toBeNull();
    expect(r.events.map((e) => e.type)).toEqual(['request-head', 'headers-end', 'message-end']);
  });
});
