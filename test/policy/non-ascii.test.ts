/**
 * Non-ASCII patterns meet head bytes. Heads arrive as latin1 byte strings (one character per byte);
 * rules and lists are written as text. Every head value below is built as the codec builds it.
 */
import { describe, expect, it } from 'vitest';
import type { BodyFacts, RuleMatchConfig } from '../../src/policy/index.js';
import { CompiledLists, parseListText } from '../../src/policy/index.js';
import { compileMatch } from '../../src/policy/conditions.js';
import { canonicalHost, canonicalUrl, normalizeUrlGlob, urlForms } from '../../src/policy/url-forms.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import { attrs } from './helpers.js';

/** `text` as its UTF-8 bytes in a latin1 string, as the codec decodes a head. */
const bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const DONE: BodyFacts = { complete: true, size: 1, fileTypes: ['unknown'] };
const IDN = 'xn--bcher-kva.example'; // bücher.example, as browsers and Squid send it

describe('user, headers and content_type compare text, not bytes', () => {
  const user = (value: string) => attrs({ icap: [['X-Client-Username', value]] });
  const header = (value: string) => attrs({ request: [['Host', 'example.com'], ['X-Dept', value]] });
  const rows: [label: string, match: RuleMatchConfig, a: ReturnType<typeof attrs>, expected: boolean][] = [
    ['user: UTF-8 bytes', { user: ['josé'] }, user(bytes('josé')), true],
    ['user: case-insensitive beyond ASCII', { user: ['JOSÉ'] }, user(bytes('josé')), true],
    ['user: glob', { user: ['*é@corp.example'] }, user(bytes('josé@corp.example')), true],
    ['user: decomposed é is é (NFC)', { user: ['josé'] }, user(bytes('jose\u0301')), true],
    ['user: base64-decoded text', { user: ['José'] }, user(b64('josé')), true],
    ['user: not UTF-8 reads as the log writes it', { user: ['jos%E9'] }, user('jos\xe9'), true],
    ['user: not UTF-8 is not guessed as latin1', { user: ['josé'] }, user('jos\xe9'), false],
    ['headers: equals', { headers: [{ name: 'X-Dept', equals: 'Büro' }] }, header(bytes('Büro')), true],
    ['headers: case-insensitive beyond ASCII', { headers: [{ name: 'X-Dept', equals: 'Büro' }] }, header(bytes('BÜRO')), true],
    ['headers: case_sensitive', { headers: [{ name: 'X-Dept', equals: 'Büro', case_sensitive: true }] }, header(bytes('BÜRO')), false],
    ['headers: contains', { headers: [{ name: 'X-Dept', contains: 'ü' }] }, header(bytes('Büro 3')), true],
    ['headers: a byte string is no pattern', { headers: [{ name: 'X-Dept', equals: 'Ã¼' }] }, header(bytes('ü')), false],
    ['content_type: glob', { content_type: ['application/x-bücher*'] }, attrs({ response: [['Content-Type', bytes('Application/X-BÜCHER; q=1')]] }), true],
  ];
  it.each(rows)('%s', (_label, match, a, expected) => {
    expect(compileMatch(match).evaluate(a, DONE)).toBe(expected);
  });
});

describe('IDNA: a host written with U-labels meets the A-labels requests carry (RFC 5890, RFC 3492)', () => {
  it.each([
    ['bücher.example', IDN],
    ['BÜCHER.Example.', IDN],
    [IDN.toUpperCase(), IDN],
    ['*.bücher.example', `*.${IDN}`], // a glob label by label
    ['b*ü.example', 'b*ü.example'], // a label with `*` is kept: never an A-label
    ['faß.de', 'xn--fa-hia.de'], // nontransitional, as browsers send it
  ])('canonicalHost %s → %s', (raw, want) => {
    expect(canonicalHost(raw)).toBe(want);
  });

  const host = (value: string) => attrs({ requestLine: 'GET / HTTP/1.1', request: [['Host', value]] });
  it.each([
    ['rule in U-labels, request in A-labels', ['bücher.example'], host(IDN), true],
    ['glob in U-labels', ['*.bücher.example'], host(`www.${IDN}`), true],
    ['rule in A-labels, raw UTF-8 Host', [IDN], host(bytes('Bücher.example:8080')), true],
    ['raw bytes that are not UTF-8 are no name', ['bücher.example'], host('b\xfccher.example'), false],
  ])('host: %s', (_label, patterns, a, expected) => {
    expect(compileMatch({ host: patterns }).evaluate(a, DONE)).toBe(expected);
  });

  describe('a rule host or URL with no A-label form is refused at load: requests carry A-labels, so it could never match', () => {
    const SOURCE = '/etc/icap-bridge/icap-bridge.yaml';
    const load = (match: string) =>
      parseConfig(`services:\n  respmod:\n    methods: [RESPMOD]\n    rules:\n      - { name: idn, action: block, match: ${match} }\n`, SOURCE, {});
    const refusal = (match: string): string => {
      try {
        load(match);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).message;
      }
      throw new Error(`${match} loaded`);
    };
    it.each([
      ["{ host: ['b*ü.example'] }", 'match.host[0]', 'the label "b*ü" mixes * with non-ASCII'],
      ["{ host: [example.com, 'BÜ*.example'] }", 'match.host[1]', 'the label "bü*" mixes * with non-ASCII'],
      ["{ host: ['bü cher.example'] }", 'match.host[0]', 'is not a valid internationalized host name'],
      ["{ url: ['http://b*ü.example/*'] }", 'match.url[0]', 'the label "b*ü" mixes * with non-ASCII'],
      ["{ url: ['b*ü.example/*.exe'] }", 'match.url[0]', 'the label "b*ü" mixes * with non-ASCII'],
      ["{ url: ['http://bü cher.example/'] }", 'match.url[0]', 'is not a valid internationalized host name'],
    ])('%s', (match, path, problem) => {
      const message = refusal(match);
      expect(message).toContain(`${SOURCE}: services.respmod.rules[0].${path}:`);
      expect(message).toContain(problem);
    });

    // What loads matches, in U-labels or A-labels.
    const host = (value: string) => attrs({ requestLine: 'GET / HTTP/1.1', request: [['Host', value]] });
    it.each([
      [['*.bücher.example'], host(bytes('www.Bücher.example')), true],
      [['*.bücher.example'], host(`www.${IDN}`), true],
      [['xn--b*.example'], host(bytes('bücher.example')), true], // a glob over A-labels
      [['b*.example'], host(IDN), false], // ASCII: `*` meets the A-label text, not U-labels
    ])('host %j', (patterns, a, expected) => {
      const match = load(`{ host: ${JSON.stringify(patterns)} }`).services['respmod']!.rules![0]!.match;
      expect(compileMatch(match, 'block').evaluate(a, DONE)).toBe(expected);
    });
  });

  it('a CONNECT target (authority-form) is read with its host in A-labels, as every other host', () => {
    const connect = (target: string) => attrs({ icapMethod: 'REQMOD', requestLine: `CONNECT ${target} HTTP/1.1`, request: [], response: null });
    expect(urlForms(bytes('BÜCHER.example.:0443')).canonical.origin).toBe(`${IDN}:443`);
    expect(urlForms('3221225991:443').loose.origin).toBe('192.0.2.7:443');
    expect(urlForms('[2001:DB8:0::1]:443').canonical.origin).toBe('[2001:db8::1]:443');
    const rule = compileMatch({ url: [`*${IDN}:443`] }, 'block');
    expect(rule.evaluate(connect(bytes('Bücher.example:443')), DONE)).toBe(true); // a raw UTF-8 target
    expect(rule.evaluate(connect(`${IDN}:443`), DONE)).toBe(true);
    const lists = new CompiledLists({ deny_urls: [{ file: 'd.urls', entries: parseEntries(`*.${IDN}:443\n`, 'url') }] });
    expect(lists.findRequest('deny', undefined, bytes('www.bücher.example:443'))).toMatchObject({ list: 'deny_urls' });
    // Host rules already read the CONNECT target through IDNA (url.ts hostOnly), in either spelling.
    expect(compileMatch({ host: ['bücher.example'] }).evaluate(connect(`${IDN}:443`), DONE)).toBe(true);
    expect(compileMatch({ host: [IDN] }).evaluate(connect(bytes('bücher.example:443')), DONE)).toBe(true);
  });

  it('url rules and list entries bring their host to A-labels', () => {
    const a = attrs({ requestLine: `GET http://${IDN}/a.exe HTTP/1.1`, request: [['Host', IDN]] });
    expect(compileMatch({ url: ['http://bücher.example/*'] }).evaluate(a, DONE)).toBe(true);
    expect(compileMatch({ url: ['*.exe'], host: ['BÜCHER.example'] }, 'block').evaluate(a, DONE)).toBe(true);
    expect(parseListText('bücher.example\n*.Bücher.example\n', 'host')).toEqual({ ok: true, entries: [IDN, `*.${IDN}`] });
    expect(parseListText('http://bücher.example/\nhttp://*.bücher.example/*\n*.bücher.example/*\n', 'url')).toEqual({
      ok: true,
      entries: [`http://${IDN}/`, `http://*.${IDN}/*`, `*.${IDN}/*`],
    });
    expect(parseListText('b*ü.example\n', 'host').ok).toBe(false); // could never match: a bad line
    expect(parseListText('http://b*ü.example/*\n', 'url')).toMatchObject({ ok: false, errors: [{ line: 1, message: expect.stringMatching(/mixes \* with non-ASCII/) }] });
  });

  it('lists match either spelling', () => {
    const lists = new CompiledLists({
      deny_hosts: [{ file: 'd.hosts', entries: parseEntries('bücher.example\n', 'host') }],
      deny_urls: [{ file: 'd.urls', entries: parseEntries('http://*.bücher.example/*\n', 'url') }],
      allow_urls: [{ file: 'a.urls', entries: parseEntries(`http://${IDN}/\n`, 'url') }],
    });
    expect(lists.findRequest('deny', IDN, `http://${IDN}/`)).toMatchObject({ list: 'deny_hosts', entry: IDN });
    expect(lists.findRequest('deny', 'x.example', `http://www.${IDN}/a`)).toMatchObject({ list: 'deny_urls' });
    expect(lists.findRequest('allow', undefined, `http://${IDN}/a`)).toMatchObject({ list: 'allow_urls' });
  });
});

describe('non-ASCII in URL paths: entries as the %XX of their UTF-8, raw request bytes as their %XX (RFC 3987 §3.1)', () => {
  it('brings both sides to one form', () => {
    expect(canonicalUrl('http://x/Büro/?q=ü')).toBe('http://x/B%C3%BCro/?q=%C3%BC');
    expect(normalizeUrlGlob('*/Büro/*')).toBe('*/B%C3%BCro/*');
    const forms = urlForms(`http://x${bytes('/Büro/a')}`);
    expect(forms.canonical.path).toBe('/B%C3%BCro/a');
  });

  it('a deny entry with a non-ASCII path meets the request however it is sent', () => {
    const lists = new CompiledLists({ deny_urls: [{ file: 'd.urls', entries: parseEntries('http://x/Büro/\n', 'url') }] });
    expect(lists.findRequest('deny', undefined, 'http://x/B%C3%BCro/a')).toBeDefined();
    expect(lists.findRequest('deny', undefined, `http://x${bytes('/Büro/a')}`)).toBeDefined();
    expect(lists.findRequest('deny', undefined, 'http://x/b%c3%bcro/a')).toBeDefined(); // loose: any case
    expect(lists.findRequest('deny', undefined, 'http://x/Buro/a')).toBeUndefined();
  });
});

function parseEntries(text: string, kind: 'host' | 'url'): string[] {
  const parsed = parseListText(text, kind);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.entries;
}
