/**
 * Which files of a configuration a cluster worker reads from the primary's copies
 * (src/cluster/config-files.ts), and the two views it runs: the server's, whose `backends` section
 * (part of the ISTag) keeps the original paths, and its backends', which read the copies.
 */
import { rmSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { namedFiles, readingCopies } from '../../src/cluster/config-files.js';
import { DEFAULT_BLOCK_PAGE } from '../../src/config/paths.js';
import { configNamingEveryFile } from './config-fixture.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

function fixture(options: { tls?: boolean } = {}): ReturnType<typeof configNamingEveryFile> {
  const f = configNamingEveryFile(options);
  dirs.push(f.dir);
  return f;
}

/** Every string in `value` that names an existing regular file, with where it is. */
function filePaths(value: unknown, at = ''): Map<string, string> {
  const found = new Map<string, string>();
  if (typeof value === 'string') {
    if (value.startsWith('/') && statSync(value, { throwIfNoEntry: false })?.isFile()) found.set(value, at);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) for (const [p, w] of filePaths(v, `${at}.${k}`)) found.set(p, w);
  }
  return found;
}

describe('namedFiles', () => {
  it('names every file the configuration holds a path to, but the file itself and the policy lists, whose entries it carries', () => {
    const { config, files } = fixture();
    const named = namedFiles(config);
    // reqmod has the shipped block page.
    expect(named.reloaded.sort()).toEqual([files.blockPage, DEFAULT_BLOCK_PAGE, files.hashes, files.upstreamCa].sort());
    expect(named.restartOnly.sort()).toEqual([files.cert, files.key, files.clientCa].sort());
    // A file key added to the schema later and not to config-files.ts fails here.
    const held = filePaths(config);
    held.delete(config.source);
    expect(held.get(files.denyUrls)).toBe('.services.respmod.lists.deny_urls.0.file');
    expect(config.services['respmod']!.lists!.deny_urls[0]!.entries).toHaveLength(1);
    held.delete(files.denyUrls);
    expect([...held.keys()].sort()).toEqual([...named.reloaded, ...named.restartOnly].sort());
  });

  it('names no TLS file while TLS is off: none is read', () => {
    expect(namedFiles(fixture({ tls: false }).config).restartOnly).toEqual([]);
  });
});

describe('readingCopies', () => {
  const copiesOf = (paths: string[]): Record<string, string> => Object.fromEntries(paths.map((p) => [p, `/copies${p}`]));

  it('points the server at copies of its block pages and TLS files, and leaves the backends section as loaded (it goes into the ISTag)', () => {
    const { config, files } = fixture();
    const named = namedFiles(config);
    const { server, backends } = readingCopies(config, copiesOf([...named.reloaded, ...named.restartOnly]));
    expect(server.services['respmod']!.block_page).toBe(`/copies${files.blockPage}`);
    expect(server.server.tls).toMatchObject({ cert: `/copies${files.cert}`, key: `/copies${files.key}`, client_ca: `/copies${files.clientCa}` });
    expect(server.backends).toStrictEqual(config.backends);
    expect(backends.backends['builtin']).toMatchObject({ hash_lists: [`/copies${files.hashes}`] });
    expect(backends.backends['upstream']).toMatchObject({ tls: { ca_file: `/copies${files.upstreamCa}` } });
    // The rest is the configuration as loaded.
    expect({ ...server, services: config.services, server: config.server }).toStrictEqual(config);
    expect({ ...backends, backends: config.backends }).toStrictEqual(config);
  });

  it('fails rather than read an original it has no copy of', () => {
    const { config, files } = fixture();
    const named = namedFiles(config);
    const copies = copiesOf([...named.reloaded, ...named.restartOnly].filter((p) => p !== files.hashes));
    expect(() => readingCopies(config, copies)).toThrow(files.hashes);
  });
});
