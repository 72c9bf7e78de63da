import { describe, expect, it } from 'vitest';
import { attrs } from './helpers.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('requestAttributes', () => {
  it('takes the client from X-Client-IP, falling back to the ICAP peer', () => {
    expect(attrs({ peer: '::ffff:10.0.0.1', icap: [['X-Client-IP', '192.0.2.10']] })).toMatchObject({ peer: '10.0.0.1', client: '192.0.2.10' });
    expect(attrs({ peer: '10.0.0.1' })).toMatchObject({ peer: '10.0.0.1', client: '10.0.0.1' });
  });

  it('takes the user from X-Client-Username, else X-Authenticated-User, decoding base64', () => {
    expect(attrs({ icap: [['X-Client-Username', b64('alice')]] })).toMatchObject({ user: 'alice', users: ['alice', b64('alice')] });
    expect(attrs({ icap: [['X-Authenticated-User', 'bob']] })).toMatchObject({ user: 'bob', users: ['bob'] });
    expect(attrs({}).users).toEqual([]);
    expect(attrs({}).user).toBeUndefined();
  });

  const urls: [label: string, line: string, host: [string, string][], url: string | undefined, hostOut: string | undefined][] = [
    ['absolute-form', 'GET HTTP://Example.COM/Path?Q=1 HTTP/1.1', [['Host', 'Example.COM']], 'http://example.com/Path?Q=1', 'example.com'],
    ['origin-form gets http:// + Host', 'GET /a/b HTTP/1.1', [['Host', 'WWW.Example.com:8080']], 'http://www.example.com:8080/a/b', 'www.example.com'],
    ['CONNECT authority-form', 'CONNECT Secure.example:443 HTTP/1.1', [], 'secure.example:443', 'secure.example'],
    ['host from the URL when no Host header', 'GET http://u.example:81/x HTTP/1.1', [], 'http://u.example:81/x', 'u.example'],
    ['IPv6 Host', 'GET / HTTP/1.1', [['Host', '[2001:db8::1]:8080']], 'http://[2001:db8::1]:8080/', '2001:db8::1'],
    ['trailing dot', 'GET / HTTP/1.1', [['Host', 'example.com.']], 'http://example.com./', 'example.com'],
  ];
  it.each(urls)('URL and host: %s', (_label, line, request, url, host) => {
    const a = attrs({ requestLine: line, request });
    expect(a.url).toBe(url);
    expect(a.host).toBe(host);
  });

  it('reads method, content type and declared size of the scanned message', () => {
    const resp = attrs({ response: [['Content-Type', 'Application/PDF; charset=x'], ['Content-Length', '1234']] });
    expect(resp).toMatchObject({ httpMethod: 'GET', contentType: 'application/pdf', declaredSize: 1234 });
    const req = attrs({
      icapMethod: 'REQMOD',
      requestLine: 'POST http://x/up HTTP/1.1',
      request: [['Host', 'x'], ['Content-Type', 'multipart/form-data; boundary=z'], ['Content-Length', '99']],
      response: null,
    });
    expect(req).toMatchObject({ httpMethod: 'POST', contentType: 'multipart/form-data', declaredSize: 99 });
  });

  it('ignores a Content-Length that is absent, conflicting or not a number', () => {
    expect(attrs({ response: [] }).declaredSize).toBeUndefined();
    expect(attrs({ response: [['Content-Length', '5'], ['Content-Length', '6']] }).declaredSize).toBeUndefined();
    expect(attrs({ response: [['Content-Length', '5, 5']] }).declaredSize).toBe(5);
    expect(attrs({ response: [['Content-Length', '-1']] }).declaredSize).toBeUndefined();
  });

  it('has no URL, host or method without a request head', () => {
    const a = attrs({ requestLine: null });
    expect(a.url).toBeUndefined();
    expect(a.host).toBeUndefined();
    expect(a.httpMethod).toBeUndefined();
  });
});
