/** One URL spelled many ways → the canonical and loose forms lists and rules compare (RFC 3986 §6.2.2–6.2.3). */
import { describe, expect, it } from 'vitest';
import { canonicalHost, canonicalUrl, compileUrlPattern, normalizeUrlGlob, urlForms, type MatchMode } from '../../src/policy/url-forms.js';

const text = (r: { origin: string; path: string; query: string }): string => r.origin + r.path + r.query;

describe('canonicalHost', () => {
  it.each([
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['3221225991', '192.0.2.7'], // decimal IPv4
    ['0xc0.0.2.7', '192.0.2.7'], // hex
    ['0300.0.2.7', '192.0.2.7'], // octal
    ['192.0.2.7.', '192.0.2.7'],
    ['[2001:DB8:0::1]', '2001:db8::1'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['::ffff:192.0.2.7', '192.0.2.7'], // IPv4-mapped: where the connection goes
    ['1.2.3.4.5', '1.2.3.4.5'], // not an address: kept
    ['*.example.com', '*.example.com'],
  ])('%s → %s', (raw, want) => {
    expect(canonicalHost(raw)).toBe(want);
  });
});

describe('canonicalUrl (list entries)', () => {
  it.each([
    ['HTTP://User:pw@Example.COM.:80/a', 'http://example.com/a'],
    ['https://example.com:443/a', 'https://example.com/a'],
    ['https://example.com:0443/a', 'https://example.com/a'],
    ['http://example.com:8080/a', 'http://example.com:8080/a'],
    ['http://good.example', 'http://good.example/'], // no path: the whole host, on a boundary
    ['http://x/%7euser/%41%2fb%2F', 'http://x/~user/A%2Fb%2F'], // unreserved decoded, %2F kept, hex upper-cased
    ['http://x/a/./b/../c/', 'http://x/a/c/'],
    ['http://x/a/%2e%2E/c', 'http://x/c'],
    ['http://x/a/..', 'http://x/'],
    ['http://x/../../a', 'http://x/a'],
    ['http://x/a?q=%7e#frag', 'http://x/a?q=~'],
    ['http://[2001:db8:0::1]:80/', 'http://[2001:db8::1]/'],
    ['www.example.com/', undefined],
    ['http:///a', undefined],
  ])('%s → %s', (raw, want) => {
    expect(canonicalUrl(raw)).toBe(want);
  });
});

describe('urlForms (requests)', () => {
  it.each([
    ['http://h/%73ecret/a.txt', 'http://h/secret/a.txt', 'http://h/secret/a.txt'],
    ['http://h/x/../secret/a.txt', 'http://h/secret/a.txt', 'http://h/secret/a.txt'],
    ['http://h//secret/a.txt', 'http://h//secret/a.txt', 'http://h/secret/a.txt'], // `//` kept canonically, merged loosely
    ['http://h/x/..%2fsecret/a', 'http://h/x/..%2Fsecret/a', 'http://h/secret/a'], // nginx decodes %2F
    ['http://h/a\\..\\secret', 'http://h/a\\..\\secret', 'http://h/secret'], // IIS reads `\` as `/`
    ['http://h/secret;jsessionid=1/a', 'http://h/secret;jsessionid=1/a', 'http://h/secret/a'], // Tomcat path params
    ['http://h/Secret/A.SCR?X=1', 'http://h/Secret/A.SCR?X=1', 'http://h/secret/a.scr?x=1'],
    ['http://u@h.:80/a', 'http://h/a', 'http://h/a'],
    ['/p/../q?a', '/q?a', '/q?a'], // origin-form without Host
    // Decoded twice loosely (IIS, CVE-2001-0333), never canonically (RFC 3986 §2.4).
    ['http://h/a/%252e%252e/secret', 'http://h/a/%252e%252e/secret', 'http://h/secret'],
    ['http://h/%2573ecret/', 'http://h/%2573ecret/', 'http://h/secret/'],
    ['http://h/a%255c..%255csecret', 'http://h/a%255c..%255csecret', 'http://h/secret'], // %5c is `\`
    ['http://h/%25252573ecret', 'http://h/%25252573ecret', 'http://h/%73ecret'], // at most 3 rounds
    ['http://h/100%25.pdf', 'http://h/100%25.pdf', 'http://h/100%.pdf'], // a % that stays a %
  ])('%s', (url, canonical, loose) => {
    const forms = urlForms(url);
    expect([text(forms.canonical), text(forms.loose)]).toEqual([canonical, loose]);
  });
});

describe('normalizeUrlGlob', () => {
  it.each([
    ['*.BadCorp.example/*', '*.badcorp.example/*'],
    ['HTTP://*.Example.COM:80/*.EXE', 'http://*.example.com/*.EXE'],
    ['http://*.example.com', 'http://*.example.com/'],
    ['http://X.example/%7e*', 'http://x.example/~*'],
    ['*.scr', '*.scr'],
  ])('%s → %s', (raw, want) => {
    expect(normalizeUrlGlob(raw)).toBe(want);
  });
});

describe('`*` only from the entry is a wildcard: a `%2A` is a star, and the URL is data', () => {
  // The loose reading decodes `%2A` to `*` on both sides; only an entry's own `*` may match a run.
  const rows: [entry: string, url: string, mode: MatchMode, expected: boolean][] = [
    ['http://h.example/a%2Ab*', 'http://h.example/aXYZb/x', 'deny', false], // was a wildcard loosely
    ['http://h.example/a%2A', 'http://h.example/abc', 'deny', false], // exact entry, as a glob loosely
    ['http://h.example/a%2Ab*', 'http://h.example/a*b/x', 'deny', true], // a star however sent
    ['http://h.example/a%2Ab*', 'http://h.example/a%2Ab/x', 'deny', true],
    ['http://h.example/a%2Ab*', 'http://h.example/a%252ab/x', 'deny', true],
    ['*/a%2A.exe', 'http://h.example/abc.exe', 'deny', false], // no scheme: the whole-URL glob
    ['*/a%2A.exe', 'http://h.example/a*.exe', 'deny', true],
    ['http://h.example/a%2Ab*', 'http://h.example/a%2Ab/x', 'allow', true],
    ['http://h.example/a%2Ab*', 'http://h.example/aXb/x', 'allow', false],
    ['http://h.example/a%2Ab*', 'http://h.example/a%2Ab/x', 'rule', true],
    ['http://h.example/a%2Ab*', 'http://h.example/aXb/x', 'rule', false],
    ['http://h.example/x*', 'http://h.example/%2A', 'deny', false], // a URL's star is no wildcard
    ['http://h.example/a*c', 'http://h.example/a%2Ac', 'deny', true], // but a character like any other
  ];
  it.each(rows)('%s ~ %s (%s) → %s', (entry, url, mode, expected) => {
    expect(compileUrlPattern(entry, { prefix: false }).matches(urlForms(url), mode)).toBe(expected);
  });
});
