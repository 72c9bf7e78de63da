/**
 * Every wire fixture decoded whole, split at every byte offset, and in random slices must give
 * the same events (STYLE.md "Split the input everywhere").
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodePieces, randomSlices, splitAt } from '../helpers/decode.js';
import { EICAR, buildRequest, httpResponseHead } from '../helpers/icap-messages.js';

const WIRE = join(import.meta.dirname, '..', 'fixtures', 'wire');

const fixtures: [string, Buffer][] = [
  ...readdirSync(WIRE)
    .filter((f) => f.endsWith('.icap'))
    .map((f): [string, Buffer] => [f, readFileSync(join(WIRE, f))]),
  ['built: respmod with preview and continue', Buffer.concat(Object.values(pick(buildRequest({ body: ['a'.repeat(40), EICAR, 'tail'], preview: 16 }))))],
  ['built: reqmod post, preview 0', Buffer.concat(Object.values(pick(buildRequest({ method: 'REQMOD', body: ['x=1&y=2'], preview: 0 }))))],
  ['built: respmod without req-hdr, trailers', buildRequest({ reqHdr: null, body: ['abc', 'def'], trailers: 'X-T: 1\r\n' }).first],
  ['built: options with null-body', buildRequest({ method: 'OPTIONS' }).first],
  ['built: respmod null-body (HEAD response)', buildRequest({ resHdr: httpResponseHead(0) }).first],
  ['built: preview holds everything (ieof)', buildRequest({ body: ['0123456789'], preview: 10 }).first],
];

function pick(r: { first: Buffer; rest: Buffer }): { first: Buffer; rest: Buffer } {
  return { first: r.first, rest: r.rest };
}

describe.each(fixtures)('fixture %s', (_name, bytes) => {
  const whole = decodePieces([bytes]);

  it('decodes whole without error and ends every message', () => {
    expect(whole.error).toBeNull();
    expect(whole.events.at(-1)).toEqual({ type: 'message-end' });
    expect(whole.events[0]?.type).toBe('request-head');
  });

  it('gives identical events when split at every byte offset', () => {
    for (let i = 1; i < bytes.length; i++) {
      expect(decodePieces(splitAt(bytes, i)), `split at ${i}`).toEqual(whole);
    }
  });

  it('gives identical events when fed one byte at a time and in random slices', () => {
    expect(decodePieces(randomSlices(bytes, 1, 1))).toEqual(whole);
    for (let seed = 1; seed <= 50; seed++) {
      expect(decodePieces(randomSlices(bytes, seed)), `seed ${seed}`).toEqual(whole);
    }
  });
});

describe('decoded content', () => {
  it('keeps the RFC RESPMOD example byte-exact and parses its views', () => {
    const bytes = readFileSync(join(WIRE, 'rfc-respmod.icap'));
    const { events } = decodePieces([bytes]);
    const heads = events.filter((e) => e.type === 'http-head');
    expect(heads.map((h) => h.type === 'http-head' && h.section)).toEqual(['req-hdr', 'res-hdr']);
    const res = heads[1]!;
    if (res.type !== 'http-head') throw new Error('unreachable');
    expect(res.startLine).toBe('HTTP/1.1 200 OK');
    expect(res.headers).toContainEqual(['ETag', '"63840-1ab7-378d415b"']);
    expect(bytes.includes(Buffer.from(res.raw, 'latin1'))).toBe(true);
    expect(events).toContainEqual({ type: 'body', data: 'This is data that was returned by an origin server.' });
  });

  it('reads service, query, preview, allow and ieof from a Squid-style request', () => {
    const { events } = decodePieces([readFileSync(join(WIRE, 'squid-respmod-ieof.icap'))]);
    const head = events[0]!;
    if (head.type !== 'request-head') throw new Error('unreachable');
    expect(head).toMatchObject({ method: 'RESPMOD', service: 'respmod', preview: 1024, allow: ['204', 'trailers'] });
    expect(events.slice(-4)).toEqual([
      { type: 'body', data: 'hello world' },
      { type: 'preview-end', ieof: true },
      { type: 'body-end', trailers: null },
      { type: 'message-end' },
    ]);
  });

  it('accepts upper- and lowercase hex and returns trailers raw', () => {
    const { events } = decodePieces([readFileSync(join(WIRE, 'respmod-hex-trailers.icap'))]);
    expect(events).toContainEqual({ type: 'body', data: '0123456789abcdefghijklmnopqrstuvwxyz' });
    expect(events).toContainEqual({ type: 'body-end', trailers: 'X-Trailer: one\r\nX-Other: two\r\n' });
  });

  it('decodes two back-to-back requests in order', () => {
    const { events } = decodePieces([readFileSync(join(WIRE, 'pipelined-two.icap'))]);
    expect(events.filter((e) => e.type === 'request-head').map((e) => e.type === 'request-head' && e.method)).toEqual(['REQMOD', 'RESPMOD']);
    expect(events.filter((e) => e.type === 'message-end')).toHaveLength(2);
  });

  it('parses query strings and bare paths', () => {
    const { events } = decodePieces([readFileSync(join(WIRE, 'rfc-reqmod-post.icap'))]);
    expect(events[0]).toMatchObject({ service: 'server', query: 'arg=87' });
  });

  it('after skipBody the next request is read from the following bytes', () => {
    const a = buildRequest({ body: ['x'.repeat(100)], preview: 10 });
    const b = buildRequest({ method: 'OPTIONS' });
    const { events, error } = decodePieces([a.first, b.first], undefined, 'skip');
    expect(error).toBeNull();
    expect(events.map((e) => e.type)).toEqual([
      'request-head', 'http-head', 'http-head', 'headers-end', 'body', 'preview-end', 'message-end',
      'request-head', 'headers-end', 'message-end',
    ]);
  });
});
