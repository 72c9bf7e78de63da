/** Which bodies are pieces of a file (src/policy/byte-range.ts): 206 ranges and partial PUTs. */
import { describe, expect, it } from 'vitest';
import { coversWholeRepresentation } from '../../src/policy/index.js';
import { attrs } from './helpers.js';

const PARTIAL = 'HTTP/1.1 206 Partial Content';

describe('coversWholeRepresentation (RFC 9110 §14.4)', () => {
  const rows: [value: string, whole: boolean][] = [
    ['bytes 0-999/1000', true],
    ['BYTES 0-999/1000', true], // range units are case-insensitive (§14.1)
    ['  bytes 0-0/1 ', true],
    ['bytes 0-998/1000', false],
    ['bytes 1-999/1000', false],
    ['bytes 0-999/*', false], // length unknown: cannot be shown whole
    ['bytes */1000', false], // unsatisfied-range (416)
    ['bytes 0-999/1001', false],
    ['items 0-999/1000', false],
    ['bytes 0-999', false],
    ['bytes=0-999/1000', false],
    ['bytes -1-999/1000', false],
    ['', false],
    // Only OWS (SP, HTAB; RFC 9110 §5.6.3) is trimmed: other whitespace makes it no Content-Range.
    ['\tbytes 0-999/1000 \t', true],
    ['bytes 0-999/1000\xa0', false], // a latin1 byte 0xA0 (NBSP to trim())
    ['bytes 0-999/1000\v', false],
    ['\fbytes 0-999/1000', false],
  ];
  it.each(rows)('%j → %s', (value, whole) => {
    expect(coversWholeRepresentation(value)).toBe(whole);
  });
});

describe('requestAttributes: partial', () => {
  it('a RESPMOD 206 with one range is partial, named by its Content-Range', () => {
    expect(attrs({ statusLine: PARTIAL, response: [['Content-Range', ' bytes 4034-8067/8068']] }).partial).toBe('bytes 4034-8067/8068');
    expect(attrs({ statusLine: PARTIAL, response: [['Content-Range', 'bytes 0-4033/8068']] }).partial).toBe('bytes 0-4033/8068');
  });

  it('a 206 whose one range is the whole file (Range: bytes=0-) is not partial', () => {
    expect(attrs({ statusLine: PARTIAL, response: [['Content-Range', 'bytes 0-8067/8068']] }).partial).toBeUndefined();
    // Not with whitespace other than OWS about it: that is no Content-Range, so not shown whole.
    expect(attrs({ statusLine: PARTIAL, response: [['Content-Range', 'bytes 0-8067/8068\xa0']] }).partial).toBe('bytes 0-8067/8068\xa0');
    expect(attrs({ statusLine: PARTIAL, response: [['Content-Range', '\vbytes 0-8067/8068']] }).partial).toBe('\vbytes 0-8067/8068');
  });

  it('a 206 that cannot be shown to be whole is partial: several ranges, no Content-Range, several headers', () => {
    expect(attrs({ statusLine: PARTIAL, response: [['Content-Type', 'multipart/byteranges; boundary=B']] }).partial).toBe('multipart/byteranges');
    expect(attrs({ statusLine: PARTIAL, response: [] }).partial).toBe('no Content-Range');
    expect(
      attrs({ statusLine: PARTIAL, response: [['Content-Range', 'bytes 0-9/10'], ['Content-Range', 'bytes 0-9/10']] }).partial,
    ).toBe('several Content-Range headers');
    expect(attrs({ statusLine: 'HTTP/1.0 206', response: [['Content-Range', 'bytes 5-9/10']] }).partial).toBe('bytes 5-9/10');
  });

  it('other statuses are whole, whatever their headers (a Content-Range means nothing outside 206 and 416)', () => {
    expect(attrs({ response: [['Content-Range', 'bytes 5-9/10']] }).partial).toBeUndefined();
    expect(attrs({ statusLine: 'HTTP/1.1 416 Range Not Satisfiable', response: [['Content-Range', 'bytes */10']] }).partial).toBeUndefined();
    expect(attrs({ response: null }).partial).toBeUndefined();
  });

  it('a REQMOD body with a Content-Range (a partial PUT, §14.5) is partial unless it covers the whole', () => {
    const put = (range: string) =>
      attrs({ icapMethod: 'REQMOD', requestLine: 'PUT http://x/f HTTP/1.1', request: [['Host', 'x'], ['Content-Range', range]], response: null });
    expect(put('bytes 100-199/1000').partial).toBe('bytes 100-199/1000');
    expect(put('bytes 0-999/1000').partial).toBeUndefined();
    expect(attrs({ icapMethod: 'REQMOD', requestLine: 'POST http://x/f HTTP/1.1', response: null }).partial).toBeUndefined();
  });

  it('the request\'s Range header alone makes nothing partial (the origin may answer 200 whole)', () => {
    expect(attrs({ request: [['Host', 'example.com'], ['Range', 'bytes=100-']] }).partial).toBeUndefined();
  });
});
