/**
 * Client-side request heads round-trip through the server's own request decoder (STYLE.md
 * "Round-trip tables"), and folded headers keep their line structure.
 */
import { describe, expect, it } from 'vitest';
import { encodeAdaptationRequestHead, encodeLastChunk, encodeChunk, encodeOptionsRequest, foldedHeaderLines } from '../../protocol/index.js';
import { decodePieces } from '../helpers/decode.js';

const reqHdr = Buffer.from('GET http://example.com/a.zip HTTP/1.1\r\nHost: example.com\r\n\r\n', 'latin1');
const resHdr = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\n\r\n', 'latin1');

describe('encodeOptionsRequest', () => {
  it('is an OPTIONS with Host and null-body the server decoder accepts', () => {
    const bytes = encodeOptionsRequest({ uri: 'icap://av:1344/avscan', host: 'av:1344', headers: [['User-Agent', 'icap-bridge']] });
    expect(bytes.toString('latin1')).toBe('OPTIONS icap://av:1344/avscan ICAP/1.0\r\nHost: av:1344\r\nUser-Agent: icap-bridge\r\nEncapsulated: null-body=0\r\n\r\n');
    const { events, error } = decodePieces([bytes]);
    expect(error).toBeNull();
    expect(events[0]).toMatchObject({ type: 'request-head', method: 'OPTIONS', service: 'avscan' });
  });
});

describe('encodeAdaptationRequestHead', () => {
  it('RESPMOD with preview: offsets from real lengths; preview then 100 then the rest decodes', () => {
    const head = encodeAdaptationRequestHead({ method: 'RESPMOD', uri: 'icap://av/avscan', host: 'av', preview: 4, allow204: true, reqHdr, resHdr, hasBody: true });
    const text = head.toString('latin1');
    expect(text).toContain('\r\nAllow: 204\r\nPreview: 4\r\n');
    expect(text).toContain(`Encapsulated: req-hdr=0, res-hdr=${reqHdr.length}, res-body=${reqHdr.length + resHdr.length}\r\n\r\n`);
    const bytes = Buffer.concat([head, encodeChunk(Buffer.from('abcd')), encodeLastChunk(), encodeChunk(Buffer.from('efgh')), encodeLastChunk()]);
    const { events, error } = decodePieces([bytes]);
    expect(error).toBeNull();
    expect(events.map((e) => e.type)).toEqual(['request-head', 'http-head', 'http-head', 'headers-end', 'body', 'preview-end', 'body', 'body-end', 'message-end']);
    expect(events).toContainEqual({ type: 'preview-end', ieof: false });
  });

  it('REQMOD never encapsulates a response head; ieof ends a preview holding the whole body', () => {
    const head = encodeAdaptationRequestHead({ method: 'REQMOD', uri: 'icap://av/req', host: 'av', preview: 10, allow204: false, reqHdr, resHdr, hasBody: true });
    expect(head.toString('latin1')).not.toContain('Allow:');
    expect(head.toString('latin1')).toContain(`Encapsulated: req-hdr=0, req-body=${reqHdr.length}\r\n`);
    const { events, error } = decodePieces([Buffer.concat([head, encodeChunk(Buffer.from('x=1')), encodeLastChunk('ieof')])]);
    expect(error).toBeNull();
    expect(events).toContainEqual({ type: 'preview-end', ieof: true });
  });

  it('no body: null-body and no Preview header', () => {
    const head = encodeAdaptationRequestHead({ method: 'RESPMOD', uri: 'icap://av/s', host: 'av', preview: 10, allow204: true, resHdr, hasBody: false });
    expect(head.toString('latin1')).not.toContain('Preview');
    expect(head.toString('latin1')).toContain(`Encapsulated: res-hdr=0, null-body=${resHdr.length}\r\n`);
    expect(decodePieces([head]).error).toBeNull();
  });

  it('refuses header injection, bad names, bad URIs and unterminated HTTP heads', () => {
    const base = { method: 'RESPMOD', uri: 'icap://av/s', host: 'av', preview: null, allow204: true, resHdr, hasBody: true } as const;
    expect(() => encodeAdaptationRequestHead({ ...base, headers: [['X-Client-IP', '1.2.3.4\r\nX-Evil: 1']] })).toThrow(RangeError);
    expect(() => encodeAdaptationRequestHead({ ...base, headers: [['Bad Name', 'x']] })).toThrow(RangeError);
    expect(() => encodeAdaptationRequestHead({ ...base, host: 'av\r\nX: y' })).toThrow(RangeError);
    expect(() => encodeAdaptationRequestHead({ ...base, uri: 'icap://av/a b' })).toThrow(RangeError);
    expect(() => encodeAdaptationRequestHead({ ...base, resHdr: Buffer.from('HTTP/1.1 200 OK\r\n') })).toThrow(RangeError);
    expect(() => encodeAdaptationRequestHead({ ...base, preview: -1 })).toThrow(RangeError);
  });
});

describe('foldedHeaderLines', () => {
  it('keeps each continuation line of every occurrence, case-insensitively, never the status line', () => {
    const raw = 'ICAP/1.0 201 Created\r\nx-violations-found: 2\r\n\ta.exe\r\n\tTrojan Horse X\r\n\t1\r\n\t2\r\n\tb.doc\r\n\tW97M.Macro\r\n\t2\r\n\t2\r\nISTag: "t"\r\nX-Violations-Found: 0\r\n\r\n';
    expect(foldedHeaderLines(Buffer.from(raw, 'latin1'), 'X-Violations-Found')).toEqual([
      ['2', 'a.exe', 'Trojan Horse X', '1', '2', 'b.doc', 'W97M.Macro', '2', '2'],
      ['0'],
    ]);
    expect(foldedHeaderLines('X-Violations-Found: 9\r\nA: b\r\n\r\n', 'X-Violations-Found')).toEqual([]);
  });
});
