/** One table row per attribute and operator: a rule's `match` against request attributes and body facts. */
import { describe, expect, it } from 'vitest';
import type { BodyFacts, RequestAttributes, RuleMatchConfig } from '../../src/policy/index.js';
import { compileMatch } from '../../src/policy/conditions.js';
import { attrs } from './helpers.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const DONE: BodyFacts = { complete: true, size: 100, fileTypes: ['unknown'] };
const START: BodyFacts = { complete: false };

type Row = [label: string, match: RuleMatchConfig, a: RequestAttributes, facts: BodyFacts, expected: boolean | undefined];

const rows: Row[] = [
  // client (X-Client-IP, else the ICAP peer) and peer
  ['client: X-Client-IP in a CIDR', { client: ['192.0.2.0/24'] }, attrs({ icap: [['X-Client-IP', '192.0.2.9']] }), DONE, true],
  ['client: X-Client-IP outside', { client: ['192.0.2.0/24'] }, attrs({ icap: [['X-Client-IP', '198.51.100.1']] }), DONE, false],
  ['client: the peer when no X-Client-IP', { client: ['10.0.0.0/8'] }, attrs({ peer: '10.2.3.4' }), DONE, true],
  ['client: IPv6 CIDR', { client: ['2001:db8::/32'] }, attrs({ icap: [['X-Client-IP', '2001:db8::5']] }), DONE, true],
  ['client: one of several entries', { client: ['198.51.100.7', '192.0.2.0/24'] }, attrs({ icap: [['X-Client-IP', '198.51.100.7']] }), DONE, true],
  ['peer: the proxy, not X-Client-IP', { peer: ['10.0.0.0/8'] }, attrs({ peer: '10.0.0.1', icap: [['X-Client-IP', '192.0.2.9']] }), DONE, true],
  ['peer: mapped IPv4 peer', { peer: ['10.0.0.1'] }, attrs({ peer: '::ffff:10.0.0.1' }), DONE, true],
  ['peer: outside', { peer: ['10.0.0.0/8'] }, attrs({ peer: '127.0.0.1' }), DONE, false],
  // user
  ['user: exact, case-insensitive', { user: ['Alice'] }, attrs({ icap: [['X-Client-Username', 'alice']] }), DONE, true],
  ['user: base64 decoded', { user: ['alice'] }, attrs({ icap: [['X-Client-Username', b64('alice')]] }), DONE, true],
  ['user: raw base64 form also matches', { user: [b64('alice')] }, attrs({ icap: [['X-Client-Username', b64('alice')]] }), DONE, true],
  ['user: glob', { user: ['*@corp.example'] }, attrs({ icap: [['X-Authenticated-User', 'bob@corp.example']] }), DONE, true],
  ['user: other user', { user: ['alice'] }, attrs({ icap: [['X-Client-Username', 'bob']] }), DONE, false],
  ['user: none sent', { user: ['*'] }, attrs(), DONE, false],
  // HTTP method, ICAP method
  ['method: GET', { method: ['GET'] }, attrs(), DONE, true],
  ['method: case-insensitive', { method: ['post'] }, attrs({ requestLine: 'POST http://x/ HTTP/1.1' }), DONE, true],
  ['method: other', { method: ['POST', 'PUT'] }, attrs(), DONE, false],
  ['method: no request head', { method: ['GET'] }, attrs({ requestLine: null }), DONE, false],
  ['icap_method: RESPMOD', { icap_method: ['RESPMOD'] }, attrs(), DONE, true],
  ['icap_method: other', { icap_method: ['REQMOD'] }, attrs(), DONE, false],
  // host and URL globs
  ['host: exact', { host: ['example.com'] }, attrs(), DONE, true],
  ['host: glob, case-insensitive', { host: ['*.Example.com'] }, attrs({ request: [['Host', 'WWW.example.COM']] }), DONE, true],
  ['host: glob does not match the apex', { host: ['*.example.com'] }, attrs(), DONE, false],
  ['host: port ignored', { host: ['example.com'] }, attrs({ request: [['Host', 'example.com:8080']] }), DONE, true],
  ['url: glob', { url: ['http://example.com/*.bin'] }, attrs(), DONE, true],
  ['url: scheme and host case-insensitive', { url: ['HTTP://EXAMPLE.COM/*'] }, attrs({ requestLine: 'GET http://Example.com/x HTTP/1.1' }), DONE, true],
  ['url: path case-sensitive', { url: ['http://example.com/FILE.bin'] }, attrs(), DONE, false],
  ['url: exact (no *) is the whole URL', { url: ['http://example.com/'] }, attrs(), DONE, false],
  ['url: glob with capitals in the host', { url: ['*.BadCorp.example/*'] }, attrs({ requestLine: 'GET http://www.badcorp.example/x HTTP/1.1' }), DONE, true],
  ['url: %XX of unreserved decoded', { url: ['http://example.com/secret/*'] }, attrs({ requestLine: 'GET http://example.com/%73ecret/a HTTP/1.1' }), DONE, true],
  ['url: dot segments removed', { url: ['http://example.com/secret/*'] }, attrs({ requestLine: 'GET http://example.com/x/../secret/a HTTP/1.1' }), DONE, true],
  ['url: glob without ? also tried without the query', { url: ['*.scr'] }, attrs({ requestLine: 'GET http://example.com/a.scr?x=1 HTTP/1.1' }), DONE, true],
  ['url: userinfo, default port, trailing dot', { url: ['http://example.com/file.bin'] }, attrs({ requestLine: 'GET http://u@example.com.:80/file.bin HTTP/1.1' }), DONE, true],
  ['url: glob host part stays in the host', { url: ['http://*.good.example/*'] }, attrs({ requestLine: 'GET http://evil.test/x.good.example/a HTTP/1.1' }), DONE, false],
  ['host: decimal IPv4', { host: ['192.0.2.7'] }, attrs({ request: [['Host', '3221225991']] }), DONE, true],
  ['host: uncompressed IPv6', { host: ['2001:db8::1'] }, attrs({ request: [['Host', '[2001:db8:0::1]:80']] }), DONE, true],
  // content type
  ['content_type: exact', { content_type: ['application/pdf'] }, attrs({ response: [['Content-Type', 'application/pdf']] }), DONE, true],
  ['content_type: glob, parameters ignored', { content_type: ['video/*'] }, attrs({ response: [['Content-Type', 'Video/MP4; codecs=x']] }), DONE, true],
  ['content_type: other', { content_type: ['image/*'] }, attrs({ response: [['Content-Type', 'text/html']] }), DONE, false],
  ['content_type: none sent', { content_type: ['*'] }, attrs(), DONE, false],
  // sizes: declared first, real at the end
  ['size: declared inside', { min_size: 10, max_size: 20 }, attrs({ response: [['Content-Length', '15']] }), START, true],
  ['size: declared outside', { max_size: 20 }, attrs({ response: [['Content-Length', '21']] }), START, false],
  ['size: bounds inclusive', { min_size: 15, max_size: 15 }, attrs({ response: [['Content-Length', '15']] }), START, true],
  ['size: none declared, body running → unknown', { min_size: 1 }, attrs(), START, undefined],
  ['size: real size wins over the declared one', { max_size: 20 }, attrs({ response: [['Content-Length', '15']] }), { complete: true, size: 5000 }, false],
  ['size: no body at all is 0 bytes', { max_size: 0 }, attrs(), { complete: true }, true],
  // file type
  ['file_type: matches', { file_type: ['exe', 'elf'] }, attrs(), { complete: false, fileTypes: ['elf'] }, true],
  ['file_type: other', { file_type: ['exe'] }, attrs(), { complete: false, fileTypes: ['pdf'] }, false],
  ['file_type: unknown is a type', { file_type: ['unknown'] }, attrs(), { complete: false, fileTypes: ['unknown'] }, true],
  ['file_type: first bytes not in yet → unknown', { file_type: ['exe'] }, attrs(), START, undefined],
  ['file_type: no body bytes never match', { file_type: ['unknown'] }, attrs(), { complete: true, fileTypes: [] }, false],
  // headers: every operator, sources, case
  ['headers: equals', { headers: [{ name: 'X-Scan', equals: 'yes' }] }, attrs({ icap: [['X-Scan', 'YES']] }), DONE, true],
  ['headers: equals, other value', { headers: [{ name: 'X-Scan', equals: 'yes' }] }, attrs({ icap: [['X-Scan', 'yes please']] }), DONE, false],
  ['headers: contains', { headers: [{ name: 'User-Agent', contains: 'curl' }] }, attrs({ request: [['User-Agent', 'Mozilla curl/8']] }), DONE, true],
  ['headers: prefix', { headers: [{ name: 'User-Agent', prefix: 'Mozilla/' }] }, attrs({ request: [['User-Agent', 'Mozilla/5.0']] }), DONE, true],
  ['headers: prefix, not at the start', { headers: [{ name: 'User-Agent', prefix: '5.0' }] }, attrs({ request: [['User-Agent', 'Mozilla/5.0']] }), DONE, false],
  ['headers: suffix', { headers: [{ name: 'Content-Disposition', suffix: '.exe"' }] }, attrs({ response: [['Content-Disposition', 'attachment; filename="a.exe"']] }), DONE, true],
  ['headers: any of several values', { headers: [{ name: 'Via', contains: 'proxy-b' }] }, attrs({ response: [['Via', '1.1 proxy-a'], ['Via', '1.1 proxy-b']] }), DONE, true],
  ['headers: name case-insensitive', { headers: [{ name: 'x-scan', equals: 'yes' }] }, attrs({ icap: [['X-SCAN', 'yes']] }), DONE, true],
  ['headers: case_sensitive', { headers: [{ name: 'X-Scan', equals: 'yes', case_sensitive: true }] }, attrs({ icap: [['X-Scan', 'YES']] }), DONE, false],
  ['headers: in: [icap] skips HTTP headers', { headers: [{ name: 'X-Tag', equals: 'a', in: ['icap'] }] }, attrs({ request: [['Host', 'example.com'], ['X-Tag', 'a']] }), DONE, false],
  ['headers: in: [request]', { headers: [{ name: 'X-Tag', equals: 'a', in: ['request'] }] }, attrs({ request: [['Host', 'example.com'], ['X-Tag', 'a']] }), DONE, true],
  ['headers: in: [response]', { headers: [{ name: 'X-Tag', equals: 'a', in: ['response'] }] }, attrs({ response: [['X-Tag', 'a']] }), DONE, true],
  ['headers: absent header', { headers: [{ name: 'X-None', contains: '' }] }, attrs(), DONE, false],
  ['headers: all conditions must hold', { headers: [{ name: 'A', equals: '1' }, { name: 'B', equals: '2' }] }, attrs({ icap: [['A', '1'], ['B', '3']] }), DONE, false],
  // partial: a 206 range (byte-range.ts)
  ['partial: true, a 206 range', { partial: true }, attrs({ statusLine: 'HTTP/1.1 206 Partial Content', response: [['Content-Range', 'bytes 100-199/1000']] }), DONE, true],
  ['partial: true, a whole 200', { partial: true }, attrs(), DONE, false],
  ['partial: true, a 206 covering the whole file', { partial: true }, attrs({ statusLine: 'HTTP/1.1 206 Partial Content', response: [['Content-Range', 'bytes 0-999/1000']] }), DONE, false],
  ['partial: false, a whole 200', { partial: false }, attrs(), DONE, true],
  ['partial: false, a 206 range', { partial: false }, attrs({ statusLine: 'HTTP/1.1 206 Partial Content', response: [['Content-Range', 'bytes 0-99/1000']] }), DONE, false],
  // combinations
  ['empty match matches everything', {}, attrs(), DONE, true],
  ['AND across keys', { host: ['example.com'], method: ['POST'] }, attrs(), DONE, false],
  ['a false condition settles it while another is unknown', { host: ['other.example'], file_type: ['exe'] }, attrs(), START, false],
  ['true and unknown → unknown', { host: ['example.com'], file_type: ['exe'] }, attrs(), START, undefined],
];

describe('compileMatch', () => {
  it.each(rows)('%s', (_label, match, a, facts, expected) => {
    expect(compileMatch(match).evaluate(a, facts)).toBe(expected);
  });

  describe('several readings: a block rule takes any, allow and scan rules need every one', () => {
    // An upload with a png and an exe part (or a decoded body and its failed raw form).
    const mixed: BodyFacts = { complete: true, size: 10, fileTypes: ['png', 'exe'] };
    it.each([
      ['block', { file_type: ['exe'] }, mixed, true],
      ['scan', { file_type: ['exe'] }, mixed, false],
      ['scan', { file_type: ['png', 'exe'] }, mixed, true],
      ['allow', { file_type: ['png'] }, mixed, false],
      ['allow', { file_type: ['png', 'exe'] }, mixed, true],
      ['allow', { file_type: ['png'] }, { complete: true, size: 10, fileTypes: ['png'] }, true],
      ['allow', { file_type: ['unknown'] }, { complete: true, size: 0, fileTypes: [] }, false],
    ] as const)('%s rule, %j', (action, match, facts, expected) => {
      expect(compileMatch(match as RuleMatchConfig, action).evaluate(attrs(), facts)).toBe(expected);
    });

    // A case-insensitive origin (IIS) serves /SECRET/ as /secret/; only the loose reading says so.
    const dotted = attrs({ requestLine: 'GET http://example.com/SECRET/a.exe HTTP/1.1' });
    it.each([
      ['block', true],
      ['allow', false],
      ['scan', false],
    ] as const)('url /secret/* requested as /SECRET/, %s rule → %s', (action, expected) => {
      expect(compileMatch({ url: ['http://example.com/secret/*'] }, action).evaluate(dotted, DONE)).toBe(expected);
    });

    // Decoded twice, as IIS did: a block rule reads it so, a scan rule (canonical) does not.
    const twice = attrs({ requestLine: 'GET http://example.com/%2573ecret/a.exe HTTP/1.1' });
    it.each([
      ['block', true],
      ['allow', false],
      ['scan', false],
    ] as const)('url /secret/* requested with its s encoded twice, %s rule → %s', (action, expected) => {
      expect(compileMatch({ url: ['http://example.com/secret/*'] }, action).evaluate(twice, DONE)).toBe(expected);
    });
    it('an allow rule needs the twice-decoded reading too', () => {
      const up = attrs({ requestLine: 'GET http://example.com/public/%252e%252e/a.exe HTTP/1.1' });
      expect(compileMatch({ url: ['http://example.com/public/*'] }, 'allow').evaluate(up, DONE)).toBe(false);
      expect(compileMatch({ url: ['http://example.com/public/*'] }, 'scan').evaluate(up, DONE)).toBe(true);
    });

    it('an allow rule glob without a scheme stays inside the host', () => {
      const evil = attrs({ requestLine: 'GET http://evil.test/x.example.com/a.exe HTTP/1.1' });
      expect(compileMatch({ url: ['*.example.com/*'] }, 'allow').evaluate(evil, DONE)).toBe(false);
      expect(compileMatch({ url: ['*.example.com/*'] }, 'block').evaluate(evil, DONE)).toBe(true);
    });
  });

  it('says which rules depend on size and file type', () => {
    expect(compileMatch({ min_size: 1 })).toMatchObject({ usesSize: true, usesFileType: false });
    expect(compileMatch({ file_type: ['pdf'] })).toMatchObject({ usesSize: false, usesFileType: true });
    expect(compileMatch(undefined)).toMatchObject({ usesSize: false, usesFileType: false });
  });
});
