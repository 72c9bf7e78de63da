/**
 * The primary's copies of the files a configuration names (src/cluster/file-snapshots.ts): what a
 * worker reads stays as it was copied whatever happens to the original; restart-only files are
 * copied once; a generation's copies go when told; nothing is left after removeAll.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSnapshots } from '../../src/cluster/file-snapshots.js';
import { DEFAULT_BLOCK_PAGE } from '../../src/config/paths.js';
import { configNamingEveryFile } from './config-fixture.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

function fixture(): ReturnType<typeof configNamingEveryFile> {
  const f = configNamingEveryFile();
  dirs.push(f.dir);
  return f;
}

const PID = 424242;

describe('FileSnapshots', () => {
  it('copies every file a worker reads; the copies keep what was copied when the originals change or go', async () => {
    const { dir, config, files } = fixture();
    const snapshots = await FileSnapshots.create(dir, PID, config);
    const copies = await snapshots.take(0, config);
    const all = [files.blockPage, DEFAULT_BLOCK_PAGE, files.hashes, files.upstreamCa, files.cert, files.key, files.clientCa];
    expect(Object.keys(copies).sort()).toEqual(all.sort());
    for (const original of all) expect(readFileSync(copies[original]!)).toEqual(readFileSync(original));
    writeFileSync(files.blockPage, 'edited');
    unlinkSync(files.hashes);
    unlinkSync(files.key);
    expect(readFileSync(copies[files.blockPage]!, 'utf8')).toBe('<p>blocked {{threats}}</p>\n');
    expect(readFileSync(copies[files.hashes]!, 'utf8')).toBe(`${'a'.repeat(64)} Test.Threat\n`);
    expect(readFileSync(copies[files.key]!, 'utf8')).toBe('secret key\n');
    snapshots.removeAll();
  });

  it('keeps others out: the directory is 0700 and a key copy keeps its 0600', async () => {
    const { dir, config, files } = fixture();
    const snapshots = await FileSnapshots.create(dir, PID, config);
    const copies = await snapshots.take(0, config);
    expect(statSync(join(dir, `icap-bridge-files-${PID}`)).mode & 0o777).toBe(0o700);
    expect(statSync(copies[files.key]!).mode & 0o777).toBe(0o600);
    snapshots.removeAll();
  });

  it('copies restart-only files once: a later generation reads the TLS files as they were at start', async () => {
    const { dir, config, files } = fixture();
    const snapshots = await FileSnapshots.create(dir, PID, config);
    const first = await snapshots.take(0, config);
    writeFileSync(files.cert, 'rotated certificate\n');
    writeFileSync(files.blockPage, 'new page');
    const second = await snapshots.take(1, config);
    expect(second[files.cert]).toBe(first[files.cert]);
    expect(readFileSync(second[files.cert]!, 'utf8')).toBe('certificate\n');
    expect(readFileSync(second[files.blockPage]!, 'utf8')).toBe('new page');
    expect(readFileSync(first[files.blockPage]!, 'utf8')).toBe('<p>blocked {{threats}}</p>\n');
    snapshots.removeAll();
  });

  it('keepOnly removes the copies of the other generations, not the restart-only ones', async () => {
    const { dir, config, files } = fixture();
    const snapshots = await FileSnapshots.create(dir, PID, config);
    const first = await snapshots.take(0, config);
    const second = await snapshots.take(1, config);
    snapshots.keepOnly(new Set([1]));
    expect(existsSync(first[files.blockPage]!)).toBe(false);
    expect(existsSync(second[files.blockPage]!)).toBe(true);
    expect(existsSync(second[files.key]!)).toBe(true);
    expect(readdirSync(join(dir, `icap-bridge-files-${PID}`)).sort()).toEqual(['1', 'start']);
    snapshots.removeAll();
    expect(existsSync(join(dir, `icap-bridge-files-${PID}`))).toBe(false);
  });

  it('a file gone since the configuration was validated fails the generation, naming the file, and leaves nothing of it', async () => {
    const { dir, config, files } = fixture();
    const snapshots = await FileSnapshots.create(dir, PID, config);
    unlinkSync(files.hashes);
    await expect(snapshots.take(0, config)).rejects.toThrow(files.hashes);
    expect(readdirSync(join(dir, `icap-bridge-files-${PID}`))).toEqual(['start']);
    snapshots.removeAll();
  });

  it('removes what a primary with the same pid left behind (killed outright)', async () => {
    const { dir, config } = fixture();
    const leftover = join(dir, `icap-bridge-files-${PID}`, '7');
    mkdirSync(leftover, { recursive: true });
    writeFileSync(join(leftover, '0-server.key'), 'old secret');
    const snapshots = await FileSnapshots.create(dir, PID, config);
    expect(existsSync(leftover)).toBe(false);
    snapshots.removeAll();
  });
});
