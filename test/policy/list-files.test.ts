import { describe, expect, it } from 'vitest';
import { entryKindOf, LIST_KEYS, parseListText } from '../../src/policy/index.js';

const HASH = 'A'.repeat(64);

describe('parseListText', () => {
  it('sha256: one hash per line, notes after whitespace or ":", comments and blanks skipped, CRLF and BOM accepted', () => {
    const text = `\uFEFF# known good installers\r\n${HASH}\r\n\r\n  ${'b'.repeat(64)}  setup.exe\n${'c'.repeat(64)}:note\n`;
    expect(parseListText(text, 'sha256')).toEqual({ ok: true, entries: ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)] });
  });

  it('hosts: lower-cased, trailing dot and IPv6 brackets removed, globs kept', () => {
    const text = 'Example.COM\nwww.example.org.\n*.Downloads.example\n192.0.2.7\n[2001:db8::1]\n';
    expect(parseListText(text, 'host')).toEqual({
      ok: true,
      entries: ['example.com', 'www.example.org', '*.downloads.example', '192.0.2.7', '2001:db8::1'],
    });
  });

  it('urls: scheme and host lower-cased, path kept as written', () => {
    expect(parseListText('HTTP://Example.COM/Downloads/\n*.exe\n', 'url')).toEqual({ ok: true, entries: ['http://example.com/Downloads/', '*.exe'] });
  });

  it('urls and hosts are stored canonical, so they meet requests spelled any way', () => {
    const urls = 'HTTP://User@Example.COM.:80/%7Efoo/./a/../Dl/\nhttp://good.example\n*.BadCorp.example/*\nhttp://[2001:db8:0::1]/x\n';
    expect(parseListText(urls, 'url')).toEqual({
      ok: true,
      entries: ['http://example.com/~foo/Dl/', 'http://good.example/', '*.badcorp.example/*', 'http://[2001:db8::1]/x'],
    });
    expect(parseListText('3221225991\n0xc0.0.2.8\n[2001:DB8:0::1]\n', 'host')).toEqual({ ok: true, entries: ['192.0.2.7', '192.0.2.8', '2001:db8::1'] });
  });

  const bad: [kind: 'sha256' | 'host' | 'url', line: string, message: string][] = [
    ['sha256', 'abc', 'expected a SHA-256 (64 hex digits)'],
    ['sha256', `${HASH}0`, 'expected a SHA-256'],
    ['sha256', 'g'.repeat(64), 'expected a SHA-256'],
    ['host', 'exa mple.com', 'expected a host name'],
    ['host', 'http://example.com/', 'expected a host name'],
    ['url', 'http://example.com/a b', 'without spaces'],
    ['url', 'www.bad.example/', 'expected a URL with a scheme and host'], // neither a URL nor a glob: never matched
    ['url', 'example.com', 'expected a URL with a scheme and host'],
    ['url', 'http:///a', 'expected a URL with a scheme and host'],
  ];
  it.each(bad)('%s: %j is an error naming its line', (kind, line, message) => {
    const parsed = parseListText(`# header\n\n${line}\n`, kind);
    expect(parsed).toEqual({ ok: false, errors: [{ line: 3, message: expect.stringContaining(message) }] });
    if (!parsed.ok) expect(parsed.errors[0]!.message).toContain('(got "');
  });

  it('reports every bad line', () => {
    const parsed = parseListText('x\ny\nexample.com\nz z\n', 'sha256');
    expect(parsed.ok ? [] : parsed.errors.map((e) => e.line)).toEqual([1, 2, 3, 4]);
  });

  it('every list key has its entry kind', () => {
    expect(LIST_KEYS.map((k) => [k, entryKindOf(k)])).toEqual([
      ['allow_sha256', 'sha256'],
      ['deny_sha256', 'sha256'],
      ['allow_urls', 'url'],
      ['deny_urls', 'url'],
      ['allow_hosts', 'host'],
      ['deny_hosts', 'host'],
    ]);
  });
});
