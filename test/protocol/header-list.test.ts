import { describe, expect, it } from 'vitest';
import { HeaderList } from '../../protocol/header-list.js';

const list = (pairs: [string, string][]): HeaderList => new HeaderList(pairs.map(([name, value]) => ({ name, value })));

describe('HeaderList.get', () => {
  it.each([
    ['few fields (scanned)', 3],
    ['many fields (indexed)', 40],
  ])('%s: case-insensitive, first value wins, absent is undefined', (_label, filler) => {
    const pairs: [string, string][] = [];
    for (let i = 0; i < filler; i++) pairs.push([`X-Filler-${i}`, String(i)]);
    pairs.push(['allow', '204'], ['Content-TYPE', 'text/plain'], ['ALLOW', 'later'], ['X-A@', 'at']);
    const h = list(pairs);
    expect(h.get('Allow')).toBe('204');
    expect(h.get('ALLOW')).toBe('204');
    expect(h.get('content-type')).toBe('text/plain');
    expect(h.get('X-A@')).toBe('at');
    // Folding applies to letters only: '`' is '@' | 0x20 but not the same character.
    expect(h.get('X-A`')).toBeUndefined();
    expect(h.get('Allo')).toBeUndefined();
    expect(h.get('Preview')).toBeUndefined();
    expect(h.getAll('allow')).toEqual(['204', 'later']);
  });

  it.each([
    ['few fields (scanned)', 0],
    ['many fields (indexed)', 40],
  ])('%s: has, getAll and tokens agree with get', (_label, filler) => {
    const pairs: [string, string][] = [['Encapsulated', 'null-body=0'], ['Host', 'x'], ['allow', '204, Trailers'], ['ALLOW', ' ,206,']];
    for (let i = 0; i < filler; i++) pairs.push([`X-Filler-${i}`, String(i)]);
    const h = list(pairs);
    expect(h.has('host')).toBe(true);
    expect(h.has('Date')).toBe(false);
    expect(h.get('ENCAPSULATED')).toBe('null-body=0');
    expect(h.getAll('Allow')).toEqual(['204, Trailers', ' ,206,']);
    expect(h.getAll('Date')).toEqual([]);
    expect([...h.tokens('Allow')]).toEqual(['204', 'trailers', '206']);
  });
});
