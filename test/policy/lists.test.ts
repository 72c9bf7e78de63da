import { describe, expect, it } from 'vitest';
import { CompiledLists, listsFingerprint, type ListKey, type ListsConfig } from '../../src/policy/index.js';

const H1 = '1'.repeat(64);
const H2 = '2'.repeat(64);

const config: ListsConfig = {
  allow_sha256: [{ file: '/l/allow.sha256', entries: [H1] }],
  deny_sha256: [{ file: '/l/deny.sha256', entries: [H2] }],
  allow_urls: [{ file: '/l/allow.urls', entries: ['http://updates.example.com/signed/', '*/trusted/*.pdf'] }],
  deny_urls: [{ file: '/l/deny.urls', entries: ['http://files.example.net/warez/', '*.scr'] }],
  allow_hosts: [{ file: '/l/allow.hosts', entries: ['intranet.example', '*.cdn.example'] }],
  deny_hosts: [
    { file: '/l/deny-a.hosts', entries: ['malware.example'] },
    { file: '/l/deny-b.hosts', entries: ['*.phish.example', '192.0.2.66'] },
  ],
};
const lists = new CompiledLists(config);

describe('CompiledLists: every list kind', () => {
  const requestRows: [side: 'allow' | 'deny', host: string | undefined, url: string | undefined, list: ListKey | null, entry?: string, file?: string][] = [
    ['deny', 'malware.example', 'http://malware.example/', 'deny_hosts', 'malware.example', '/l/deny-a.hosts'],
    ['deny', 'MALWARE.example', undefined, 'deny_hosts', 'malware.example'],
    ['deny', 'login.phish.example', undefined, 'deny_hosts', '*.phish.example', '/l/deny-b.hosts'],
    ['deny', 'phish.example', undefined, null], // `*.` means subdomains only
    ['deny', '192.0.2.66', undefined, 'deny_hosts', '192.0.2.66'],
    ['deny', 'files.example.net', 'http://files.example.net/warez/x.zip', 'deny_urls', 'http://files.example.net/warez/'],
    ['deny', 'files.example.net', 'http://files.example.net/music/x.zip', null],
    ['deny', 'a.example', 'http://a.example/screensaver.scr', 'deny_urls', '*.scr'],
    ['deny', undefined, undefined, null],
    ['allow', 'intranet.example', undefined, 'allow_hosts', 'intranet.example'],
    ['allow', 'img.cdn.example', undefined, 'allow_hosts', '*.cdn.example'],
    ['allow', 'x.example', 'http://updates.example.com/signed/kb1.msu', 'allow_urls', 'http://updates.example.com/signed/'],
    ['allow', 'x.example', 'http://updates.example.com/unsigned/kb1.msu', null],
    ['allow', 'x.example', 'https://docs.example/trusted/manual.pdf', 'allow_urls', '*/trusted/*.pdf'],
    ['allow', 'malware.example', undefined, null], // sides do not mix
  ];
  it.each(requestRows)('%s host=%s url=%s → %s', (side, host, url, list, entry, file) => {
    const hit = lists.findRequest(side, host, url);
    if (list === null) expect(hit).toBeUndefined();
    else expect(hit).toMatchObject({ list, entry, ...(file !== undefined && { file }) });
  });

  it('hashes: exact, case-insensitive', () => {
    expect(lists.findHash('allow', H1.toUpperCase())).toEqual({ list: 'allow_sha256', entry: H1, file: '/l/allow.sha256' });
    expect(lists.findHash('deny', H2)).toEqual({ list: 'deny_sha256', entry: H2, file: '/l/deny.sha256' });
    expect(lists.findHash('deny', H1)).toBeUndefined();
  });

  it('knows when a body hash is needed', () => {
    expect(lists.needsSha256).toBe(true);
    expect(new CompiledLists({ deny_hosts: config.deny_hosts }).needsSha256).toBe(false);
    expect(new CompiledLists({ allow_sha256: [{ file: '/empty', entries: [] }] }).needsSha256).toBe(false);
    expect(new CompiledLists(undefined).has('deny_hosts')).toBe(false);
  });
});

describe('CompiledLists: an allow glob without a scheme names a host, not any URL', () => {
  const globs = new CompiledLists({
    allow_urls: [{ file: '/l/allow.urls', entries: ['*.example.com/*'] }],
    deny_urls: [{ file: '/l/deny.urls', entries: ['*.bad.example/*'] }],
  });
  it.each([
    ['allow', 'http://www.example.com/a.exe', true],
    ['allow', 'https://cdn.example.com/x/y.zip', true],
    // Matched against the whole URL, the leading `*` also took another host's path.
    ['allow', 'http://evil.test/x.example.com/a.exe', false],
    ['allow', 'http://evil.test/?u=x.example.com/a.exe', false],
    ['deny', 'http://www.bad.example/a.exe', true],
    // A deny glob keeps the whole-URL reading: it denies more, never less.
    ['deny', 'http://other.test/x.bad.example/a.exe', true],
  ] as const)('%s %s → %s', (side, url, hit) => {
    expect(globs.findRequest(side, undefined, url) !== undefined).toBe(hit);
  });
});

describe('CompiledLists: one URL spelled differently is one URL', () => {
  const spelled = new CompiledLists({
    deny_urls: [{ file: '/l/deny.urls', entries: ['http://localhost:23080/secret/', '*.scr', '*.BadCorp.example/*', 'http://files.example/warez/'] }],
    allow_urls: [{ file: '/l/allow.urls', entries: ['http://localhost:23080/public/', 'http://good.example', 'http://cdn.example/*.pdf'] }],
    deny_hosts: [{ file: '/l/deny.hosts', entries: ['192.0.2.7', '2001:db8::1', 'malware.example'] }],
    allow_hosts: [{ file: '/l/allow.hosts', entries: ['intranet.example'] }],
  });
  const L = 'http://localhost:23080';
  // [side, host, url, hit?]: each row was a bypass (deny missed) or a widening (allow hit) before.
  const rows: [side: 'allow' | 'deny', host: string | undefined, url: string | undefined, hit: boolean][] = [
    ['deny', undefined, `${L}/secret/a.txt`, true], // control
    ['deny', undefined, `${L}/%73ecret/a.txt`, true],
    ['deny', undefined, `${L}/x/../secret/a.txt`, true],
    ['deny', undefined, `${L}/x/%2e%2e/secret/a.txt`, true],
    ['deny', undefined, `${L}//secret/a.txt`, true],
    ['deny', undefined, `${L}/x/..%2fsecret/a.txt`, true],
    ['deny', undefined, `${L}/a.scr?x=1`, true],
    ['deny', undefined, `${L}/a.%73cr`, true],
    ['deny', undefined, 'http://localhost.:23080/secret/a.txt', true], // trailing dot
    ['deny', undefined, 'http://user:pw@localhost:23080/secret/a.txt', true], // userinfo
    ['deny', undefined, 'http://files.example:80/warez/x.zip', true], // default port
    ['deny', undefined, 'http://www.badcorp.example/x', true], // glob with capitals
    ['deny', undefined, `${L}/secretive/a.txt`, false], // control: another path
    ['deny', '3221225991', undefined, true], // decimal IPv4
    ['deny', '0xc0.0.2.7', undefined, true],
    ['deny', '2001:db8:0::1', undefined, true], // uncompressed IPv6
    ['deny', 'good.example', 'http://malware.example/', true], // the URL's host counts too
    ['deny', undefined, `${L}/%2573ecret/a.txt`, true], // decoded twice (IIS)
    ['deny', undefined, `${L}/x/%252e%252e/secret/a.txt`, true],
    ['deny', undefined, `${L}/x/..%252fsecret/a.txt`, true],
    ['allow', undefined, `${L}/public/a.exe`, true], // control
    ['allow', undefined, `${L}/public/../a.exe`, false],
    ['allow', undefined, `${L}/public/%2e%2e/a.exe`, false],
    ['allow', undefined, `${L}/public/..%2fa.exe`, false],
    ['allow', undefined, `${L}/public/%252e%252e/a.exe`, false], // every reading, the twice-decoded one too
    ['allow', undefined, `${L}/public/100%25.pdf`, true], // control: a plain %25 stays inside
    ['allow', undefined, 'http://good.example/x', true], // control
    ['allow', undefined, 'http://good.example.evil.test/x', false],
    ['allow', undefined, 'http://good.example@evil.test/x', false],
    ['allow', undefined, 'http://cdn.example/a.pdf?x=1', true], // a glob without `?` is about the path
    ['allow', undefined, 'http://cdn.example/evil.exe?.pdf', false],
    ['allow', 'intranet.example', 'http://evil.test/x', false], // both hosts must be allowed
  ];
  it.each(rows)('%s host=%s url=%s → %s', (side, host, url, hit) => {
    expect(spelled.findRequest(side, host, url) !== undefined).toBe(hit);
  });
});

describe('listsFingerprint (ISTag input)', () => {
  it('depends on entries, not on files, order or duplicates', () => {
    const a = listsFingerprint({ deny_hosts: [{ file: '/a', entries: ['x.example', 'y.example'] }] });
    const b = listsFingerprint({ deny_hosts: [{ file: '/b', entries: ['y.example'] }, { file: '/c', entries: ['x.example', 'y.example'] }] });
    expect(a).toBe(b);
    expect(listsFingerprint({ deny_hosts: [{ file: '/a', entries: ['x.example'] }] })).not.toBe(a);
    expect(listsFingerprint({ allow_hosts: [{ file: '/a', entries: ['x.example', 'y.example'] }] })).not.toBe(a);
  });

  it('is undefined without entries, so services without lists keep their tag', () => {
    expect(listsFingerprint(undefined)).toBeUndefined();
    expect(listsFingerprint({ deny_hosts: [], allow_sha256: [{ file: '/e', entries: [] }] })).toBeUndefined();
  });
});
