/**
 * Which bytes a decoded head keeps alive (head-reader.ts). An encapsulated HTTP head read from a
 * small socket read is kept as a view of it (no copy); one at the front of a large read is copied
 * out, so 64 concurrent transactions do not each pin a 64 KiB read for their whole life. The ICAP
 * request head keeps no bytes at all: its `raw` is rebuilt from the parsed text when asked for.
 */
import { describe, expect, it } from 'vitest';
import { IcapDecoder, type HttpHead, type IcapRequestHead } from '../../protocol/index.js';

const HTTP_HEAD = 'GET http://example.test/a HTTP/1.1\r\nHost: example.test\r\n\r\n';

function request(bodyBytes: number): Buffer {
  const icap =
    'REQMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\n' +
    `Encapsulated: req-hdr=0, ${bodyBytes > 0 ? 'req-body' : 'null-body'}=${HTTP_HEAD.length}\r\n\r\n`;
  const body = bodyBytes > 0 ? `${bodyBytes.toString(16)}\r\n${'x'.repeat(bodyBytes)}\r\n0\r\n\r\n` : '';
  return Buffer.from(icap + HTTP_HEAD + body, 'latin1');
}

/** Decodes `bytes` pushed as one socket read would arrive: a fresh allocation of exactly its length. */
function decodeOneRead(bytes: Buffer): { icap: IcapRequestHead; http: HttpHead } {
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

describe('bytes a decoded head keeps alive', () => {
  it('keeps an HTTP head from a small read as a view of that read', () => {
    const bytes = request(0);
    const { http } = decodeOneRead(bytes);
    expect(http.raw.toString('latin1')).toBe(HTTP_HEAD);
    expect(http.raw.buffer.byteLength).toBe(bytes.length);
  });

  it('copies an HTTP head out of a large read (a body behind it), pinning only its own bytes', () => {
    const { http } = decodeOneRead(request(64 * 1024));
    expect(http.raw.toString('latin1')).toBe(HTTP_HEAD);
    // Its own allocation (or a slice of Node's 8 KiB pool), not the 64 KiB read.
    expect(http.raw.buffer.byteLength).toBeLessThanOrEqual(8192);
  });

  it('gives the ICAP head back byte for byte, every byte value included', () => {
    const odd = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i))
      .filter((c) => c !== '\r' && c !== '\n')
      .join('');
    const icap =
      `REQMOD icap://127.0.0.1/reqmod ICAP/1.0\r\nX-Bytes: ${odd}\r\n` +
      `Encapsulated: req-hdr=0, null-body=${HTTP_HEAD.length}\r\n\r\n`;
    const { icap: head } = decodeOneRead(Buffer.from(icap + HTTP_HEAD, 'latin1'));
    expect(head.raw.equals(Buffer.from(icap, 'latin1'))).toBe(true);
  });
});
