import { describe, expect, it } from 'vitest';
import { compileGlob, globMatch } from '../../src/policy/index.js';
import { compileGlobPieces } from '../../src/policy/glob.js';

describe('globMatch', () => {
  const rows: [pattern: string, text: string, expected: boolean][] = [
    ['example.com', 'example.com', true],
    ['example.com', 'example.org', false],
    ['*', '', true],
    ['*', 'anything at all', true],
    ['*.example.com', 'www.example.com', true],
    ['*.example.com', 'a.b.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'evilexample.com', false],
    ['http://example.com/*', 'http://example.com/', true],
    ['http://example.com/*', 'http://example.com', false],
    ['*.exe', 'http://x/setup.exe', true],
    ['*.exe', 'http://x/setup.exe?x=1', false],
    ['*/downloads/*.zip', 'http://x/downloads/a/b.zip', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a**b', 'ab', true],
    // `?` is literal: URLs are full of it.
    ['http://x/search?q=*', 'http://x/search?q=abc', true],
    ['http://x/search?q=*', 'http://x/searchXq=abc', false],
    ['ab', 'abc', false],
    ['abc', 'ab', false],
  ];
  it.each(rows)('%j ~ %j → %s', (pattern, text, expected) => {
    expect(globMatch(pattern, text)).toBe(expected);
  });

  it('stays linear on patterns that make backtracking regexps explode', () => {
    // `^.*a.*a.*a.*a.*b$` on 20 000 × "a" is hopeless for a backtracking engine; here it is a
    // bounded number of steps, so the test only checks the answer.
    expect(globMatch('*a*a*a*a*b', 'a'.repeat(20_000))).toBe(false);
    expect(globMatch('*a*a*a*a*b', `${'a'.repeat(20_000)}b`)).toBe(true);
  });
});

describe('compileGlob', () => {
  it('is case-sensitive unless asked', () => {
    expect(compileGlob('*.EXAMPLE.com').matches('www.example.com')).toBe(false);
    expect(compileGlob('*.EXAMPLE.com', { caseInsensitive: true }).matches('WWW.example.COM')).toBe(true);
    expect(compileGlob('Alice', { caseInsensitive: true }).matches('alice')).toBe(true);
    expect(compileGlob('Alice').matches('alice')).toBe(false);
  });
});

describe('compileGlobPieces', () => {
  it('takes a `*` inside a piece as a character, only the gaps between pieces as wildcards', () => {
    const glob = compileGlobPieces(['/a*b', '']); // `/a` `*` `b` then a wildcard
    expect(glob.matches('/a*b/x')).toBe(true);
    expect(glob.matches('/aXb/x')).toBe(false);
    expect(compileGlobPieces(['*']).matches('*')).toBe(true);
    expect(compileGlobPieces(['*']).matches('x')).toBe(false);
    expect(compileGlobPieces(['a', '*', 'c']).matches('aX*Yc')).toBe(true);
    expect(compileGlobPieces(['a', '*', 'c']).matches('aXYc')).toBe(false);
  });
});
