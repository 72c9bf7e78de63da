/** planContent: which bodies are decoded or split, decided from the heads at header time. */
import { describe, expect, it } from 'vitest';
import { HeaderList, type HttpHead } from '../../protocol/index.js';
import { planContent } from '../../src/server/content-plan.js';

const head = (section: 'req-hdr' | 'res-hdr', ...fields: [string, string][]): HttpHead => ({
  section,
  raw: Buffer.alloc(0),
  startLine: section === 'req-hdr' ? 'POST /up HTTP/1.1' : 'HTTP/1.1 200 OK',
  headers: new HeaderList(fields.map(([name, value]) => ({ name, value }))),
});
const ON = { content_decoding: { enabled: true, max_decoded_bytes: 1000, max_ratio: 7 }, multipart: { enabled: true, max_parts: 9 } };
const plan = (method: 'REQMOD' | 'RESPMOD', reqHdr: HttpHead | null, resHdr: HttpHead | null, service = ON) => planContent({ method, reqHdr, resHdr, service });

describe('planContent', () => {
  it('RESPMOD: the response\'s Content-Encoding decides; streams stay closed for a coding we undo', () => {
    const p = plan('RESPMOD', head('req-hdr', ['Content-Encoding', 'br']), head('res-hdr', ['Content-Encoding', 'gzip']));
    expect(p).toEqual({ decode: { contentEncoding: 'gzip', limits: { maxDecodedBytes: 1000, maxRatio: 7 } }, suppressStreams: true, multipart: null });
  });

  it('a range of a gzip-encoded file is not decoded (a piece of the encoded stream), the whole file in a 206 is', () => {
    const piece = { ...head('res-hdr', ['Content-Encoding', 'gzip'], ['Content-Range', 'bytes 500-600/9000']), startLine: 'HTTP/1.1 206 Partial Content' };
    expect(plan('RESPMOD', null, piece)).toEqual({ decode: null, suppressStreams: false, multipart: null });
    const whole = { ...head('res-hdr', ['Content-Encoding', 'gzip'], ['Content-Range', 'bytes 0-8999/9000']), startLine: 'HTTP/1.1 206 Partial Content' };
    expect(plan('RESPMOD', null, whole).decode?.contentEncoding).toBe('gzip');
    const partialPut = head('req-hdr', ['Content-Encoding', 'gzip'], ['Content-Range', 'bytes 0-99/1000']);
    expect(plan('REQMOD', partialPut, null).decode).toBeNull();
  });

  it('several Content-Encoding fields are one list', () => {
    expect(plan('RESPMOD', null, head('res-hdr', ['Content-Encoding', 'gzip'], ['content-encoding', 'br'])).decode?.contentEncoding).toBe('gzip, br');
  });

  it('identity or no Content-Encoding: nothing to decode; a coding we cannot undo keeps the streams', () => {
    expect(plan('RESPMOD', null, head('res-hdr', ['Content-Encoding', 'identity']))).toEqual({ decode: null, suppressStreams: false, multipart: null });
    expect(plan('RESPMOD', null, head('res-hdr'))).toEqual({ decode: null, suppressStreams: false, multipart: null });
    expect(plan('RESPMOD', null, head('res-hdr', ['Content-Encoding', 'zstd']))).toMatchObject({ decode: { contentEncoding: 'zstd' }, suppressStreams: false });
  });

  it('REQMOD multipart uploads are split (form-data, related, mixed); byteranges, other types, RESPMOD, or multipart off are not', () => {
    const form = head('req-hdr', ['Content-Type', 'Multipart/Form-Data; boundary=abc']);
    expect(plan('REQMOD', form, null).multipart).toEqual({ contentType: 'Multipart/Form-Data; boundary=abc', maxParts: 9 });
    for (const type of ['multipart/related; boundary=abc', 'multipart/mixed;boundary=abc', ' multipart/alternative ; boundary=abc']) {
      expect(plan('REQMOD', head('req-hdr', ['Content-Type', type]), null).multipart).toEqual({ contentType: type, maxParts: 9 });
    }
    for (const type of ['multipart/byteranges; boundary=abc', 'multipart/ByteRanges', 'application/form-data', 'multipart', 'multipart/']) {
      expect(plan('REQMOD', head('req-hdr', ['Content-Type', type]), null).multipart).toBeNull();
    }
    expect(plan('RESPMOD', form, head('res-hdr', ['Content-Type', 'multipart/form-data; boundary=abc'])).multipart).toBeNull();
    expect(plan('REQMOD', form, null, { ...ON, multipart: { enabled: false, max_parts: 9 } }).multipart).toBeNull();
  });

  it('content_decoding off: nothing decoded, streams as before', () => {
    const off = { ...ON, content_decoding: { ...ON.content_decoding, enabled: false } };
    expect(plan('RESPMOD', null, head('res-hdr', ['Content-Encoding', 'gzip']), off)).toEqual({ decode: null, suppressStreams: false, multipart: null });
  });
});
