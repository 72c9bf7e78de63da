/** Encoder tables and encode → decode round trips (STYLE.md "Round-trip tables"). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CONTINUE_100,
  encapsulatedValue,
  encodeChunk,
  encodeLastChunk,
  encodeRequestHead,
  encodeResponseHead,
  encodeSimpleResponse,
  encodeUseOriginalBody,
  IcapResponseDecoder,
  type ResponseDecoderEvent,
} from '../../protocol/index.js';
import { decodePieces, randomSlices } from '../helpers/decode.js';
import { parseResponse } from '../helpers/icap-response.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('encoder', () => {
  it('computes Encapsulated offsets from the real block lengths (§4.4.1)', () => {
    expect(encapsulatedValue({ body: null })).toBe('null-body=0');
    expect(encapsulatedValue({ reqHdr: b('12345'), body: 'req-body' })).toBe('req-hdr=0, req-body=5');
    expect(encapsulatedValue({ reqHdr: b('123'), resHdr: b('12345'), body: 'res-body' })).toBe('req-hdr=0, res-hdr=3, res-body=8');
    expect(encapsulatedValue({ resHdr: b('1234'), body: null })).toBe('res-hdr=0, null-body=4');
  });

  it('writes status lines with RFC reason phrases', () => {
    expect(encodeSimpleResponse(404, [['ISTag', '"x"']]).toString()).toBe(
      'ICAP/1.0 404 ICAP Service Not Found\r\nISTag: "x"\r\nEncapsulated: null-body=0\r\n\r\n',
    );
    expect(CONTINUE_100.toString()).toBe('ICAP/1.0 100 Continue\r\n\r\n');
  });

  it('frames chunks and the last chunk with extensions and trailers', () => {
    expect(encodeChunk(b('hello, world!!!!')).toString()).toBe('10\r\nhello, world!!!!\r\n');
    expect(encodeLastChunk().toString()).toBe('0\r\n\r\n');
    expect(encodeLastChunk('use-original-body=0').toString()).toBe('0; use-original-body=0\r\n\r\n');
    expect(encodeLastChunk(null, b('X-T: 1\r\n')).toString()).toBe('0\r\nX-T: 1\r\n\r\n');
  });

  it('round-trips a response through the test parser', () => {
    const resHdr = b('HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\n');
    const bytes = Buffer.concat([
      encodeResponseHead({ status: 200, headers: [['ISTag', '"a"']], resHdr, body: 'res-body' }),
      encodeChunk(b('nope')),
      encodeLastChunk(),
    ]);
    const r = parseResponse(bytes)!;
    expect(r).toMatchObject({ status: 200, resHdr: resHdr.toString(), length: bytes.length });
    expect(r.body?.toString()).toBe('nope');
  });
});

describe('206 Partial Content (icap-extensions.md §C)', () => {
  it('ends the body with use-original-body=N', () => {
    expect(encodeUseOriginalBody(0).toString()).toBe('0; use-original-body=0\r\n\r\n');
    expect(encodeUseOriginalBody(1024).toString()).toBe('0; use-original-body=1024\r\n\r\n');
  });

  it.each([-1, 1.5, Number.NaN, 2 ** 53])('refuses the offset %s', (offset) => {
    expect(() => encodeUseOriginalBody(offset)).toThrow(RangeError);
  });

  it('a 206 with the original head and no data chunks decodes as "these headers, the original body"', () => {
    const resHdr = b('HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n');
    const bytes = Buffer.concat([
      encodeResponseHead({ status: 206, headers: [['ISTag', '"a"']], resHdr, body: 'res-body' }),
      encodeUseOriginalBody(0),
    ]);
    expect(bytes.toString('latin1')).toMatch(/^ICAP\/1\.0 206 Partial Content\r\n/);
    const events: ResponseDecoderEvent[] = [];
    const decoder = new IcapResponseDecoder((e) => events.push(e));
    for (const piece of randomSlices(bytes, 7)) decoder.push(piece);
    expect(events.map((e) => e.type)).toEqual(['response-head', 'http-head', 'headers-end', 'body-end', 'message-end']);
    expect(events.find((e) => e.type === 'body-end')).toMatchObject({ extension: 'use-original-body=0', trailers: null });
    expect(decoder.idle).toBe(true);
    const r = parseResponse(bytes)!;
    expect(r).toMatchObject({ status: 206, resHdr: resHdr.toString('latin1'), lastChunkExtension: 'use-original-body=0', length: bytes.length });
    expect(r.body!.length).toBe(0);
  });
});

describe('encode → decode round trip (property)', () => {
  const headerName = fc.stringMatching(/^X-[A-Za-z0-9-]{1,12}$/);
  const headerValue = fc.stringMatching(/^[ -~]{0,40}$/).map((s) => s.trim());
  const httpBlock = (start: string) =>
    fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }).map((hs) => `${start}\r\n${hs.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`);

  it('decodes what the encoder wrote, in any slicing', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('REQMOD' as const, 'RESPMOD' as const),
        fc.option(httpBlock('GET http://a/b HTTP/1.1'), { nil: undefined }),
        httpBlock('HTTP/1.1 200 OK'),
        fc.option(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 5 }), { nil: undefined }),
        fc.integer({ min: 1, max: 1000 }),
        (method, reqText, resText, chunks, seed) => {
          const reqHdr = reqText !== undefined ? b(reqText) : method === 'REQMOD' ? b('GET / HTTP/1.1\r\n\r\n') : null;
          const resHdr = method === 'RESPMOD' ? b(resText) : null;
          const body = chunks?.map((c) => Buffer.from(c));
          const head = encodeRequestHead({
            method,
            uri: 'icap://127.0.0.1/svc',
            headers: [['Host', '127.0.0.1']],
            reqHdr,
            resHdr,
            body: body ? (method === 'REQMOD' ? 'req-body' : 'res-body') : null,
          });
          const bytes = Buffer.concat([head, ...(body ? [...body.map(encodeChunk), encodeLastChunk()] : [])]);
          const decoded = decodePieces(randomSlices(bytes, seed, 64));
          expect(decoded.error).toBeNull();
          const heads = decoded.events.filter((e) => e.type === 'http-head').map((e) => e.type === 'http-head' && e.raw);
          expect(heads).toEqual([reqHdr, resHdr].filter((x) => x !== null).map((x) => x!.toString('latin1')));
          const data = decoded.events.filter((e) => e.type === 'body').map((e) => (e.type === 'body' ? e.data : '')).join('');
          expect(data).toBe(Buffer.concat(body ?? []).toString('latin1'));
          expect(decoded.events.at(-1)).toEqual({ type: 'message-end' });
        },
      ),
      { numRuns: 300 },
    );
  });
});
