/** Each malformed or over-limit ICAP response → one coded error, at whatever split (STYLE.md testParseError). */
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, IcapResponseDecoder, type ResponseDecoderLimits } from '../../protocol/index.js';
import { splitAt } from '../helpers/decode.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const small: ResponseDecoderLimits = { ...DEFAULT_LIMITS, icapHeaderBytes: 256, httpHeaderBytes: 128, headerCount: 8, chunkLineBytes: 32, bodyBytes: 1000 };
const blockHead = 'HTTP/1.1 403 Forbidden\r\n\r\n';

const cases: [string, Buffer, string, ResponseDecoderLimits?][] = [
  ['garbage status line', b('HELLO\r\n\r\n'), 'ICAP_ERR_MALFORMED'],
  ['HTTP status line', b('HTTP/1.1 200 OK\r\n\r\n'), 'ICAP_ERR_MALFORMED'],
  ['non-numeric status', b('ICAP/1.0 2x4 No\r\n\r\n'), 'ICAP_ERR_MALFORMED'],
  ['ICAP/2.0', b('ICAP/2.0 204 No Content\r\n\r\n'), 'ICAP_ERR_VERSION'],
  ['header without colon', b('ICAP/1.0 204 No Content\r\nISTag\r\n\r\n'), 'ICAP_ERR_MALFORMED'],
  ['unknown Encapsulated entity', b('ICAP/1.0 200 OK\r\nEncapsulated: foo-hdr=0\r\n\r\n'), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['Encapsulated ending in a header block', b('ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0\r\n\r\n'), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['res-hdr before req-hdr', b('ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, req-hdr=10, null-body=20\r\n\r\n'), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['two bodies', b('ICAP/1.0 200 OK\r\nEncapsulated: res-body=0, null-body=0\r\n\r\n'), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['first offset not 0', b('ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=4, null-body=40\r\n\r\n'), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['offset shorter than the block', b(`ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=${blockHead.length - 2}\r\n\r\n${blockHead}`), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['offset longer than the block', b(`ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=${blockHead.length + 3}\r\n\r\n${blockHead}3\r\nabc\r\n0\r\n\r\n`), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['100 Continue with a body', b('ICAP/1.0 100 Continue\r\nEncapsulated: res-body=0\r\n\r\n'), 'ICAP_ERR_BAD_ENCAPSULATED'],
  ['head over the limit', b(`ICAP/1.0 200 OK\r\nX: ${'a'.repeat(300)}\r\n\r\n`), 'ICAP_ERR_HEADER_TOO_LARGE', small],
  ['head over the limit, never terminated', b(`ICAP/1.0 200 OK\r\nX: ${'a'.repeat(300)}`), 'ICAP_ERR_HEADER_TOO_LARGE', small],
  ['HTTP block over the limit', b('ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=200\r\n\r\n'), 'ICAP_ERR_HEADER_TOO_LARGE', small],
  ['too many headers', b(`ICAP/1.0 204 No Content\r\n${'X-A: 1\r\n'.repeat(9)}\r\n`), 'ICAP_ERR_TOO_MANY_HEADERS', small],
  ['chunk line too long', b(`ICAP/1.0 200 OK\r\nEncapsulated: res-body=0\r\n\r\n${'0'.repeat(40)}1\r\n`), 'ICAP_ERR_CHUNK_LINE_TOO_LONG', small],
  ['chunk line never terminated', b(`ICAP/1.0 200 OK\r\nEncapsulated: res-body=0\r\n\r\n${'1'.repeat(40)}`), 'ICAP_ERR_CHUNK_LINE_TOO_LONG', small],
  ['non-hex chunk size', b('ICAP/1.0 200 OK\r\nEncapsulated: res-body=0\r\n\r\nzz\r\n'), 'ICAP_ERR_MALFORMED'],
  ['chunk data without CRLF', b('ICAP/1.0 200 OK\r\nEncapsulated: res-body=0\r\n\r\n3\r\nabcd\r\n'), 'ICAP_ERR_MALFORMED'],
  ['huge declared chunk', b('ICAP/1.0 200 OK\r\nEncapsulated: res-body=0\r\n\r\nffffffffffffffffff\r\n'), 'ICAP_ERR_BODY_TOO_LARGE'],
  ['body over the limit', b(`ICAP/1.0 200 OK\r\nEncapsulated: res-body=0\r\n\r\n258\r\n${'a'.repeat(600)}\r\n258\r\n`), 'ICAP_ERR_BODY_TOO_LARGE', small],
  ['trailers over the limit', b(`ICAP/1.0 200 OK\r\nEncapsulated: res-body=0\r\n\r\n0\r\nX: ${'t'.repeat(200)}\r\n\r\n`), 'ICAP_ERR_HEADER_TOO_LARGE', small],
];

function errorCode(pieces: Buffer[], limits: ResponseDecoderLimits): string | null {
  const decoder = new IcapResponseDecoder(() => {}, limits);
  try {
    for (const p of pieces) decoder.push(p);
  } catch (err) {
    expect(decoder.failed).toBe(true);
    return (err as { code: string }).code;
  }
  return null;
}

describe.each(cases)('%s', (_name, bytes, code, limits = DEFAULT_LIMITS) => {
  it(`fails with ${code}, whole and at every split`, () => {
    expect(errorCode([bytes], limits)).toBe(code);
    for (let i = 1; i < bytes.length; i++) expect(errorCode(splitAt(bytes, i), limits), `split at ${i}`).toBe(code);
  });
});

describe('after an error', () => {
  it('ignores further input', () => {
    const events: string[] = [];
    const decoder = new IcapResponseDecoder((e) => events.push(e.type));
    expect(() => decoder.push(b('NOPE\r\n\r\n'))).toThrow();
    decoder.push(b('ICAP/1.0 204 No Content\r\n\r\n'));
    expect(events).toEqual([]);
  });
});
