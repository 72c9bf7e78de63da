/**
 * The request line, service URI and Encapsulated entities are scanned by index (request-head.ts,
 * encapsulated.ts) where regexes and split() were used before. These tests hold the scans to the
 * regex definitions they replaced, on hand-picked inputs and on fast-check's (as decoder-fuzz.test.ts).
 * Header values are cut by index where slice().trim() was used: the same string for any value.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseEncapsulated } from '../../protocol/encapsulated.js';
import { parseHeaderBlock } from '../../protocol/header-block.js';
import { IcapProtocolError } from '../../protocol/errors.js';
import { parseRequestHead, splitServiceUri } from '../../protocol/request-head.js';
import { DEFAULT_LIMITS } from '../../protocol/types.js';

/** The definition splitServiceUri had: scheme and authority by regex, slashes trimmed by regex. */
function splitByRegex(uri: string): { service: string; query: string } {
  let rest = uri;
  const scheme = /^icaps?:\/\/[^/?]*/i.exec(rest);
  if (scheme !== null) rest = rest.slice(scheme[0].length);
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  return { service: path.replace(/^\/+|\/+$/g, ''), query: q === -1 ? '' : rest.slice(q + 1) };
}

/** The entity grammar parseEncapsulated had, on the trimmed, lower-cased entity. */
const ENTITY = /^(req-hdr|res-hdr|req-body|res-body|opt-body|null-body)=(\d{1,15})$/;

/** A string of `pieces` joined, at most `max` of them. */
function joined(pieces: readonly string[], max: number): fc.Arbitrary<string> {
  return fc.array(fc.constantFrom(...pieces), { maxLength: max }).map((parts) => parts.join(''));
}


function outcome(call: () => unknown): unknown {
  try {
    return call();
  } catch (err) {
    if (err instanceof IcapProtocolError) return `${err.code}: ${err.message}`;
    throw err;
  }
}

describe('splitServiceUri', () => {
  it.each([
    ['icap://proxy:1344/avscan', 'avscan', ''],
    ['ICAPS://proxy/avscan/?mode=fast', 'avscan', 'mode=fast'],
    ['icap://proxy', '', ''],
    ['icap://proxy?x', '', 'x'],
    ['//reqmod//', 'reqmod', ''],
    ['icapx://h/s', 'icapx://h/s', ''],
    ['icap:/h/s', 'icap:/h/s', ''],
    // Only letters fold: 0x0f | 0x20 is '/' and 0x1a | 0x20 is ':', yet neither is one.
    ['icap:\x0f\x0fh/s', 'icap:\x0f\x0fh/s', ''],
    ['icap\x1a//h/s', 'icap\x1a//h/s', ''],
  ])('%j → service %j, query %j', (uri, service, query) => {
    expect(splitServiceUri(uri)).toEqual({ service, query });
    expect(splitByRegex(uri)).toEqual({ service, query });
  });

  it('agrees with the regex definition on random URIs', () => {
    const pieces = ['i', 'c', 'a', 'p', 's', 'I', 'C', 'P', 'S', ':', '/', '//', '?', 'h', '.', '=', '\x0f', '\x1a', '\xe9', ' '];
    const uri = fc.tuple(fc.constantFrom('', 'icap://', 'ICAPS://', 'iCaP:/'), joined(pieces, 10)).map(([a, b]) => a + b);
    fc.assert(
      fc.property(uri, (u) => {
        expect(splitServiceUri(u)).toEqual(splitByRegex(u));
      }),
      { numRuns: 20_000, interruptAfterTimeLimit: 4000 },
    );
  });
});

describe('Encapsulated entities', () => {
  it('accepts exactly what the entity regex accepted, with the same error otherwise', () => {
    const names = ['req-hdr', 'res-hdr', 'req-body', 'res-body', 'opt-body', 'null-body', 'REQ-HDR', 'Res-Body', 'null-bodyx', 'req_hdr', ''];
    const offsets = ['0', '12', '0012', '', '123456789012345', '1234567890123456', '9x', '-1', '\u0661'];
    const entity = fc
      .tuple(fc.constantFrom('', ' ', '\t', '\xa0'), fc.constantFrom(...names), fc.constantFrom('=', ' =', '= ', ''), fc.constantFrom(...offsets), fc.constantFrom('', ' '))
      .map((parts) => parts.join(''));
    const value = fc.tuple(fc.array(entity, { minLength: 1, maxLength: 3 }), fc.constantFrom(',', ', ', ',,')).map(([list, comma]) => list.join(comma));
    fc.assert(
      fc.property(value, fc.constantFrom('REQMOD', 'RESPMOD', 'OPTIONS') as fc.Arbitrary<'REQMOD' | 'RESPMOD' | 'OPTIONS'>, (v, method) => {
        // Past any 15-digit offset: the per-entity offset limit never speaks first here.
        const got = outcome(() => parseEncapsulated(v, method, 1e15));
        const malformed = v.split(',').find((part) => ENTITY.exec(part.trim().toLowerCase()) === null);
        if (malformed !== undefined) {
          expect(got).toBe(`ICAP_ERR_BAD_ENCAPSULATED: Encapsulated: unknown or malformed entity ${JSON.stringify(malformed.trim())}`);
        } else {
          // Well-formed entities: the grammar checks that follow are unchanged code.
          expect(typeof got === 'string' ? got : 'parsed').not.toMatch(/malformed entity/);
        }
      }),
      { numRuns: 20_000, interruptAfterTimeLimit: 4000 },
    );
  });
});

describe('request line', () => {
  it.each([
    ['REQMOD icap://h/s ICAP/1.0', null],
    ['REQMOD  icap://h/s ICAP/1.0', 'ICAP_ERR_MALFORMED'],
    [' REQMOD icap://h/s ICAP/1.0', 'ICAP_ERR_MALFORMED'],
    ['REQMOD icap://h/s ICAP/1.0 ', 'ICAP_ERR_MALFORMED'],
    ['REQMOD icap://h/s', 'ICAP_ERR_MALFORMED'],
    ['REQMOD icap://h/s ICAP/1.0 x', 'ICAP_ERR_MALFORMED'],
    ['REQMOD icap://h/s ICAP/1.1', 'ICAP_ERR_VERSION'],
    ['REQMOD icap://h/s icap/1.0', 'ICAP_ERR_MALFORMED'],
    ['GET icap://h/s ICAP/1.0', 'ICAP_ERR_UNKNOWN_METHOD'],
    ['1GET icap://h/s ICAP/1.0', 'ICAP_ERR_MALFORMED'],
    ['reqmod icap://h/s ICAP/1.0', 'ICAP_ERR_UNKNOWN_METHOD'],
  ])('%j → %s', (line, code) => {
    const text = `${line}\r\nEncapsulated: req-hdr=0, null-body=10`;
    const got = outcome(() => parseRequestHead(text, DEFAULT_LIMITS));
    if (code === null) expect(got).toMatchObject({ method: 'REQMOD', service: 's', version: 'ICAP/1.0' });
    else expect(String(got)).toMatch(new RegExp(`^${code}:`));
  });

  it('reads Allow from a small head without building the header index', () => {
    const text = 'RESPMOD icap://h/s ICAP/1.0\r\nallow: 204, Trailers\r\nAllow: 206\r\nEncapsulated: res-hdr=0, null-body=10';
    expect([...parseRequestHead(text, DEFAULT_LIMITS).allow]).toEqual(['204', 'trailers', '206']);
  });

  it('splits list headers as split(",") did: empty items dropped, items trimmed and lower-cased', () => {
    const text = 'RESPMOD icap://h/s ICAP/1.0\r\nAllow: , a,,B ,\r\nAllow: ,\r\nEncapsulated: res-hdr=0, null-body=10';
    expect([...parseRequestHead(text, DEFAULT_LIMITS).allow]).toEqual(['a', 'b']);
  });
});

describe('header values', () => {
  it('are what slice().trim() made of the text after the colon, whitespace of every kind included', () => {
    // Every character trim() removes below U+0100 (TAB LF VT FF CR SP NBSP), at either end and inside.
    const pieces = ['a', 'Z', '0', ' ', '\t', '\x0b', '\x0c', '\xa0', '\r', '\n', ':', ',', '\x85', '\xff'];
    fc.assert(
      fc.property(joined(pieces, 12), (value) => {
        // A CR LF inside the value would end the line: the block's own framing, not this property.
        fc.pre(!value.includes('\r\n') && !value.endsWith('\r'));
        const block = parseHeaderBlock(`HTTP/1.1 200 OK\r\nX-Value:${value}`, 10, 'test');
        expect(block.headers.get('X-Value')).toBe(value.trim());
      }),
      { numRuns: 5000 },
    );
  });
});
