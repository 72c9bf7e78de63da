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
