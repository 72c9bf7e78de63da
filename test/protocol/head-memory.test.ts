/**
 * What a decoded head keeps (head-reader.ts): the ICAP request head and the encapsulated HTTP heads
 * keep their latin1 text, not the socket read they came in, and give their bytes (`raw`) back
 * exactly, every byte value included, when asked for.
 */
import { describe, expect, it } from 'vitest';
import { IcapDecoder, type HttpHead, type IcapRequestHead } from '../../protocol/index.js';

/** Every byte value a header value may hold (all but CR and LF). */
const EVERY_BYTE = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i))
  .filter((c) => c !== '\r' && c !== '\n')
  .join('');
const HTTP_HEAD = `GET http://example.test/a HTTP/1.1\r\nHost: example.test\r\nX-Bytes: ${EVERY_BYTE}\r\n\r\n`;
const ICAP_HEAD =
  `REQMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\nX-Bytes: ${EVERY_BYTE}\r\n` +
  `Encapsulated: req-hdr=0, req-body=${HTTP_HEAD.length}\r\n\r\n`;

/** Decodes `bytes` pushed as one socket read would arrive: a fresh allocation of exactly its length. */
function decodeOneRead(bodyBytes: number): { icap: IcapRequestHead; http: HttpHead } {
  const body = `${bodyBytes > 0 ? `${bodyBytes.toString(16)}\r\n${'x'.repeat(bodyBytes)}\r\n` : ''}0\r\n\r\n`;
  const bytes = Buffer.from(ICAP_HEAD + HTTP_HEAD + body, 'latin1');
  const read = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(read);
  let icap: IcapRequestHead | undefined;
  let http: HttpHead | undefined;
  const decoder = new IcapDecoder((e) => {
    if (e.type === 'request-head') icap = e.head;
    if (e.type === 'http-head') http = e.head;
  });
  decoder.push(read);
  return { icap: icap!, http: http! };
}

describe('what a decoded head keeps', () => {
  it.each([0, 100, 64 * 1024])('gives both heads back byte for byte (body of %i bytes behind them in the same read)', (bodyBytes) => {
    const { icap, http } = decodeOneRead(bodyBytes);
    expect(icap.raw.equals(Buffer.from(ICAP_HEAD, 'latin1'))).toBe(true);
    expect(http.raw.equals(Buffer.from(HTTP_HEAD, 'latin1'))).toBe(true);
    expect(http.headers.get('X-Bytes')).toBe(EVERY_BYTE.trim());
  });

  it('does not pin the socket read: the HTTP head bytes are a buffer of their own', () => {
    const { http } = decodeOneRead(64 * 1024);
    expect(http.raw.length).toBe(HTTP_HEAD.length);
    expect(http.raw.buffer.byteLength).toBeLessThanOrEqual(8192); // its own, or a slice of Node's 8 KiB pool
  });
});

describe("an encapsulated HTTP head's headers, parsed on first use", () => {
  it('are what parsing the block at once gives: order, case, repeated names, folded lines', () => {
    const block = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Folded: a\r\n  b\r\n\tc\r\nset-cookie: 1\r\nSet-Cookie: 2\r\nX-Empty:\r\n\r\n';
    const head = `RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nEncapsulated: res-hdr=0, null-body=${block.length}\r\n\r\n`;
    let http: HttpHead | undefined;
    new IcapDecoder((e) => {
      if (e.type === 'http-head') http = e.head;
    }).push(Buffer.from(head + block, 'latin1'));
    expect(http!.startLine).toBe('HTTP/1.1 200 OK');
    expect(http!.headers.fields).toEqual([
      { name: 'Content-Type', value: 'text/plain' },
      { name: 'X-Folded', value: 'a b c' },
      { name: 'set-cookie', value: '1' },
      { name: 'Set-Cookie', value: '2' },
      { name: 'X-Empty', value: '' },
    ]);
    expect(http!.headers.getAll('Set-Cookie')).toEqual(['1', '2']);
    expect(http!.headers).toBe(http!.headers); // parsed once
  });
});
