/** OPTIONS parsing, transfer rules and preview choice, endpoint URLs, and the `type: icap` config. */
import { describe, expect, it } from 'vitest';
import { parseResponseHead, DEFAULT_LIMITS } from '../../protocol/index.js';
import { parseIcapUrl, requestUri } from '../../src/backends/icap/icap-url.js';
import { parseOptionsAnswer, previewSize, transferMode, urlExtension, type UpstreamOptions } from '../../src/backends/icap/upstream-options.js';
import { parseConfig } from '../../src/config/index.js';
import { expectProblem, SOURCE } from '../config/helpers.js';

function head(text: string) {
  return parseResponseHead(Buffer.from(text, 'latin1'), DEFAULT_LIMITS);
}

const C_ICAP_OPTIONS =
  'ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nService: C-ICAP/0.5.10 server - Antivirus service\r\nISTag: "CI0001-N/t6rRV1aFIvaTbjTuzDPgAA"\r\n' +
  'Transfer-Preview: *\r\nOptions-TTL: 3600\r\nDate: Sat, 21 Nov 2026 10:22:40 GMT\r\nPreview: 1024\r\nAllow: 204\r\nEncapsulated: null-body=0\r\n\r\n';

describe('parseOptionsAnswer', () => {
  it("reads c-icap virus_scan's answer", () => {
    const parsed = parseOptionsAnswer(head(C_ICAP_OPTIONS));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.options).toMatchObject({
      preview: 1024,
      allow204: true,
      transferPreview: ['*'],
      transferIgnore: [],
      transferComplete: [],
      istag: '"CI0001-N/t6rRV1aFIvaTbjTuzDPgAA"',
      maxConnections: null,
      ttlMs: 3_600_000,
      service: 'C-ICAP/0.5.10 server - Antivirus service',
    });
    expect([...parsed.options.methods!]).toEqual(['RESPMOD', 'REQMOD']);
  });

  it('reads Max-Connections and transfer lists; missing or malformed values are absent', () => {
    const parsed = parseOptionsAnswer(
      head('ICAP/1.0 200 OK\r\nMax-Connections: 20\r\nTransfer-Ignore: HTML, .gif\r\nTransfer-Complete: exe\r\nPreview: lots\r\nOptions-TTL: -1\r\n\r\n'),
    );
    expect(parsed.ok && parsed.options).toMatchObject({
      methods: null,
      preview: null,
      allow204: false,
      maxConnections: 20,
      transferIgnore: ['html', 'gif'],
      transferComplete: ['exe'],
      istag: null,
      ttlMs: null,
    });
  });

  it('refuses anything but 200', () => {
    expect(parseOptionsAnswer(head('ICAP/1.0 404 ICAP Service Not Found\r\n\r\n'))).toEqual({ ok: false, reason: 'OPTIONS answered 404 ICAP Service Not Found' });
  });
});

describe('transfer rules (§4.10.2) and the preview size', () => {
  const base: UpstreamOptions = {
    methods: null,
    preview: 1024,
    allow204: true,
    transferPreview: ['*'],
    transferIgnore: ['gif', 'jpg'],
    transferComplete: ['exe'],
    istag: null,
    maxConnections: null,
    ttlMs: null,
    service: null,
  };

  it('named extensions win, then the list holding *', () => {
    expect(transferMode(base, 'exe')).toBe('complete');
    expect(transferMode(base, 'gif')).toBe('ignore');
    expect(transferMode(base, 'zip')).toBe('preview');
    expect(transferMode(base, '')).toBe('preview');
    expect(transferMode({ ...base, transferPreview: ['zip'], transferComplete: ['*'] }, 'doc')).toBe('complete');
    expect(transferMode({ ...base, transferPreview: [], transferIgnore: ['*'] }, 'doc')).toBe('ignore');
  });

  it('the override lowers the preview, never raises it; no Preview header, no preview', () => {
    expect(previewSize(base, 'preview', undefined)).toBe(1024);
    expect(previewSize(base, 'preview', 100)).toBe(100);
    expect(previewSize(base, 'preview', 0)).toBe(0);
    expect(previewSize(base, 'preview', 4096)).toBe(1024);
    expect(previewSize(base, 'complete', 100)).toBeNull();
    expect(previewSize({ ...base, preview: null }, 'preview', 100)).toBeNull();
  });

  it('takes the extension of the last path segment, without query', () => {
    expect(urlExtension('http://x.example/dir.d/File.EXE?a=b.c#f')).toBe('exe');
    expect(urlExtension('http://x.example/dir.d/file')).toBe('');
    expect(urlExtension('/upload/.profile')).toBe('');
    expect(urlExtension(undefined)).toBe('');
  });
});

describe('endpoint URLs', () => {
  it.each([
    ['icap://av-1:1344/avscan', { secure: false, host: 'av-1', port: 1344, path: '/avscan' }],
    ['icap://av-1/avscan?mode=x', { secure: false, host: 'av-1', port: 1344, path: '/avscan?mode=x' }],
    ['icaps://av-1/avscan', { secure: true, host: 'av-1', port: 11344, path: '/avscan' }],
    ['ICAP://[::1]:80/respmod', { secure: false, host: '::1', port: 80, path: '/respmod' }],
    ['icap://127.0.0.1:1345/SYMCScanResp-AV', { secure: false, host: '127.0.0.1', port: 1345, path: '/SYMCScanResp-AV' }],
  ])('%s', (text, expected) => {
    const parsed = parseIcapUrl(text);
    expect(parsed.ok && parsed.url).toMatchObject(expected);
  });

  it.each(['http://av/avscan', 'icap://av-1:1344', 'icap://av-1:1344/', 'icap://u:p@av/s', 'icap://av/s#x', 'icap://av:70000/s', 'av:1344/s'])('refuses %s', (text) => {
    expect(parseIcapUrl(text).ok).toBe(false);
  });

  it('builds the request URI with the configured name and brackets for IPv6', () => {
    const v6 = parseIcapUrl('icap://[::1]:1344/avscan');
    expect(v6.ok && requestUri(v6.url)).toBe('icap://[::1]:1344/avscan');
    const named = parseIcapUrl('icaps://av.example/avscan');
    expect(named.ok && requestUri(named.url)).toBe('icaps://av.example:11344/avscan');
  });
});

describe('config: type icap', () => {
  const yaml = (backend: string): string => `backends:\n  up:\n    type: icap\n${backend}services:\n  respmod: { backends: [up] }\n`;

  it('fills the defaults, pool keys included', () => {
    const config = parseConfig(yaml('    endpoints: ["icap://127.0.0.1:1345/avscan"]\n'), SOURCE, {});
    expect(config.backends.up).toMatchObject({
      type: 'icap',
      endpoints: ['icap://127.0.0.1:1345/avscan'],
      timeout_ms: 60_000,
      connect_timeout_ms: 2_000,
      max_body_bytes: 0,
      tls: { ca_file: '', reject_unauthorized: true },
      max_concurrency: 16,
      max_queue: 64,
      health_interval_ms: 10_000,
      balance: 'round-robin',
    });
    expect(config.backends.up).not.toHaveProperty('preview_bytes');
  });

  it('takes preview_bytes and the TLS settings', () => {
    const config = parseConfig(yaml('    endpoints: ["icaps://av:11344/avscan"]\n    preview_bytes: 512\n    tls: { reject_unauthorized: false }\n'), SOURCE, {});
    expect(config.backends.up).toMatchObject({ preview_bytes: 512, tls: { ca_file: '', reject_unauthorized: false } });
  });

  it('names the field and the rule when wrong', () => {
    expectProblem(yaml('    endpoints: ["http://av/avscan"]\n'), 'backends.up.endpoints[0]', 'icap:// or icaps://');
    expectProblem(yaml('    endpoints: ["icap://av:1344"]\n'), 'backends.up.endpoints[0]', 'service path is missing');
    expectProblem(yaml('    endpoints: []\n'), 'backends.up.endpoints', 'non-empty');
    expectProblem(yaml('    endpoints: ["icap://av/s"]\n    preview_bytes: -1\n'), 'backends.up.preview_bytes', 'integer between 0 and 1048576');
    expectProblem(yaml('    endpoints: ["icap://av/s"]\n    weights: { "icap://other/s": 2 }\n'), 'backends.up.weights["icap://other/s"]', 'names no endpoint');
    expectProblem(yaml('    endpoints: ["icap://av/s"]\n    tls: { ca_file: /nonexistent/ca.pem }\n'), 'backends.up.tls.ca_file', 'nonexistent');
    expectProblem(yaml('    endpoints: ["icap://av/s"]\n    preview: 10\n'), 'backends.up.preview', 'unknown key');
  });
});
