/**
 * The ICAP response decoder (client side): every response fixture decoded whole, split at every
 * byte offset and in random slices gives the same events (STYLE.md "Split the input everywhere"),
 * and the decoded content is what the bytes say.
 */
import { describe, expect, it } from 'vitest';
import { IcapResponseDecoder, type ResponseDecoderEvent } from '../../protocol/index.js';
import { randomSlices, splitAt } from '../helpers/decode.js';

type Normalized =
  | { type: 'response-head'; status: number; reason: string; raw: string; sections: string[]; body: string | null }
  | { type: 'http-head'; section: string; startLine: string; raw: string }
  | { type: 'headers-end'; body: string | null }
  | { type: 'body'; data: string }
  | { type: 'body-end'; extension: string | null; trailers: string | null }
  | { type: 'message-end' };

function normalize(e: ResponseDecoderEvent): Normalized {
  switch (e.type) {
    case 'response-head':
      return {
        type: 'response-head',
        status: e.head.status,
        reason: e.head.reason,
        raw: e.head.raw.toString('latin1'),
        sections: e.head.encapsulated.headers.map((h) => `${h.name}:${h.length}`),
        body: e.head.encapsulated.body,
      };
    case 'http-head':
      return { type: 'http-head', section: e.head.section, startLine: e.head.startLine, raw: e.head.raw.toString('latin1') };
    case 'body':
      return { type: 'body', data: e.data.toString('latin1') };
    case 'body-end':
      return { type: 'body-end', extension: e.extension, trailers: e.trailers?.toString('latin1') ?? null };
    default:
      return { ...e };
  }
}

function decodeResponses(pieces: Buffer[]): { events: Normalized[]; error: string | null; idle: boolean } {
  const events: Normalized[] = [];
  const decoder = new IcapResponseDecoder((e) => {
    const n = normalize(e);
    const last = events[events.length - 1];
    if (n.type === 'body' && last?.type === 'body') last.data += n.data;
    else events.push(n);
  });
  try {
    for (const p of pieces) decoder.push(p);
  } catch (err) {
    return { events, error: (err as { code: string }).code, idle: decoder.idle };
  }
  return { events, error: null, idle: decoder.idle };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const blockHead = 'HTTP/1.0 403 Forbidden\r\nServer: C-ICAP\r\nContent-Type: text/html\r\n\r\n';
const page = '<html>VIRUS FOUND</html>\n\0\0';
const reqHead = 'GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n';

/** c-icap virus_scan's answer to EICAR, as recorded from /usr/bin/c-icap 0.5.10 (byte layout kept). */
const cIcapInfected = b(
  'ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: "CI0001-N/t6rRV1aFIvaTbjTuzDPgAA"\r\n' +
    'X-Infection-Found: Type=0; Resolution=2; Threat=IcapBridge.Test.Eicar.UNOFFICIAL;\r\n' +
    'X-Violations-Found: 1\r\n\t-\r\n\tIcapBridge.Test.Eicar.UNOFFICIAL\r\n\t0\r\n\t0\r\n' +
    `Encapsulated: res-hdr=0, res-body=${blockHead.length}\r\n\r\n${blockHead}${page.length.toString(16)}\r\n${page}\r\n0\r\n\r\n`,
);

const fixtures: [string, Buffer][] = [
  ['c-icap virus_scan infected (200, res-hdr, res-body)', cIcapInfected],
  ['c-icap OPTIONS', b('ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nService: C-ICAP/0.5.10 server - Antivirus service\r\nISTag: "CI0001-x"\r\nTransfer-Preview: *\r\nOptions-TTL: 3600\r\nPreview: 1024\r\nAllow: 204\r\nEncapsulated: null-body=0\r\n\r\n')],
  ['204 without Encapsulated', b('ICAP/1.0 204 No Content\r\nISTag: "x"\r\n\r\n')],
  ['100 Continue then 204 back to back (SPE)', b('ICAP/1.0 100 Continue\r\n\r\nICAP/1.0 204 No Content\r\nISTag: "x"\r\nEncapsulated: null-body=0\r\n\r\n')],
  ['201 Created with X-Violations-Found, no body', b('ICAP/1.0 201 Created\r\nISTag: "SYMC"\r\nX-Violations-Found: 1\r\n\teicar.com\r\n\tEICAR Test String\r\n\t11101\r\n\t2\r\nEncapsulated: null-body=0\r\n\r\n')],
  ['REQMOD echo: req-hdr and req-body with trailers and an extension', b(`ICAP/1.0 200 OK\r\nISTag: "x"\r\nEncapsulated: req-hdr=0, req-body=${reqHead.length}\r\n\r\n${reqHead}3\r\nabc\r\nA\r\n0123456789\r\n0; x-ext=1\r\nX-Trailer: t\r\n\r\n`)],
  ['REQMOD request satisfaction (res-hdr, null-body)', b(`ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=${blockHead.length}\r\n\r\n${blockHead}`)],
  ['503 then pipelined 404', b('ICAP/1.0 503 Service Overloaded\r\nISTag: "x"\r\n\r\nICAP/1.0 404 ICAP Service Not Found\r\nEncapsulated: null-body=0\r\n\r\n')],
  ['status line without reason phrase', b('ICAP/1.0 204\r\n\r\n')],
];

describe.each(fixtures)('response fixture %s', (_name, bytes) => {
  const whole = decodeResponses([bytes]);

  it('decodes whole, ends every response, and leaves nothing buffered', () => {
    expect(whole.error).toBeNull();
    expect(whole.idle).toBe(true);
    expect(whole.events[0]?.type).toBe('response-head');
    expect(whole.events.at(-1)).toEqual({ type: 'message-end' });
  });

  it('gives identical events when split at every byte offset', () => {
    for (let i = 1; i < bytes.length; i++) {
      expect(decodeResponses(splitAt(bytes, i)), `split at ${i}`).toEqual(whole);
    }
  });

  it('gives identical events fed one byte at a time and in random slices', () => {
    expect(decodeResponses(randomSlices(bytes, 1, 1))).toEqual(whole);
    for (let seed = 1; seed <= 30; seed++) expect(decodeResponses(randomSlices(bytes, seed)), `seed ${seed}`).toEqual(whole);
  });
});

describe('decoded response content', () => {
  it('frames the c-icap block page: head, res-hdr, the page bytes, end', () => {
    const { events } = decodeResponses([cIcapInfected]);
    expect(events.map((e) => e.type)).toEqual(['response-head', 'http-head', 'headers-end', 'body', 'body-end', 'message-end']);
    expect(events[0]).toMatchObject({ status: 200, reason: 'OK', sections: [`res-hdr:${blockHead.length}`], body: 'res-body' });
    expect(events[1]).toEqual({ type: 'http-head', section: 'res-hdr', startLine: 'HTTP/1.0 403 Forbidden', raw: blockHead });
    expect(events[3]).toEqual({ type: 'body', data: page });
    expect(events[4]).toEqual({ type: 'body-end', extension: null, trailers: null });
  });

  it('keeps the raw head, so folded X-Violations-Found lines survive', () => {
    const { events } = decodeResponses([cIcapInfected]);
    const head = events[0] as { raw: string };
    expect(head.raw).toContain('X-Violations-Found: 1\r\n\t-\r\n\tIcapBridge.Test.Eicar.UNOFFICIAL\r\n');
    expect(head.raw.endsWith('\r\n\r\n')).toBe(true);
  });

  it('reads the last-chunk extension and the trailers raw', () => {
    const { events } = decodeResponses([fixtures[5]![1]]);
    expect(events).toContainEqual({ type: 'body', data: 'abc0123456789' });
    expect(events).toContainEqual({ type: 'body-end', extension: 'x-ext=1', trailers: 'X-Trailer: t\r\n' });
  });

  it('treats 100 Continue as a message of its own, and decodes pipelined responses in order', () => {
    const spe = decodeResponses([fixtures[3]![1]]).events;
    expect(spe.filter((e) => e.type === 'response-head').map((e) => (e as { status: number }).status)).toEqual([100, 204]);
    expect(spe.filter((e) => e.type === 'message-end')).toHaveLength(2);
    const errors = decodeResponses([fixtures[7]![1]]).events;
    expect(errors.filter((e) => e.type === 'response-head').map((e) => (e as { status: number }).status)).toEqual([503, 404]);
  });

  it('reports a reason phrase of "" when there is none', () => {
    expect(decodeResponses([fixtures[8]![1]]).events[0]).toMatchObject({ status: 204, reason: '' });
  });

  it('is not idle while a response is incomplete', () => {
    const partial = decodeResponses([cIcapInfected.subarray(0, cIcapInfected.length - 3)]);
    expect(partial.error).toBeNull();
    expect(partial.idle).toBe(false);
    expect(partial.events.at(-1)?.type).toBe('body');
  });
});
