import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from '../../src/config/index.js';
import { configError, expectProblem } from './helpers.js';

const FIXTURE_DIR = resolve(import.meta.dirname, '../fixtures/config/relative');
const FIXTURE = join(FIXTURE_DIR, 'icap-bridge.yaml');

describe('paths', () => {
  it('relative block_page, hash_lists and spool.directory resolve against the config file directory', () => {
    const config = loadConfigFile(FIXTURE, {});
    expect(config.services['respmod']?.block_page).toBe(join(FIXTURE_DIR, 'pages/blocked.html'));
    const builtin = config.backends['builtin'];
    expect(builtin?.type === 'builtin' && builtin.hash_lists).toEqual([join(FIXTURE_DIR, 'lists/blocked.sha256')]);
    expect(config.spool.directory).toBe(join(FIXTURE_DIR, 'lists'));
  });

  it('a relative config path gives an absolute source', () => {
    const relative = join('test/fixtures/config/relative/icap-bridge.yaml');
    expect(loadConfigFile(relative, {}).source).toBe(resolve(relative));
  });

  it('absolute paths are kept as they are', () => {
    const text = `services:\n  a: {block_page: "${join(FIXTURE_DIR, 'pages/blocked.html')}"}\n`;
    expect(parseConfig(text, '/elsewhere/x.yaml', {}).services['a']?.block_page).toBe(join(FIXTURE_DIR, 'pages/blocked.html'));
  });

  it('an empty spool.directory is the system temporary directory', () => {
    expect(parseConfig('spool: {directory: ""}', '/x.yaml', {}).spool.directory).toBe(tmpdir());
  });

  it('a missing hash list file is an error naming its key path', () => {
    const err = configError('backends:\n  builtin: {type: builtin, hash_lists: [nope.sha256]}\n', {}, FIXTURE);
    expect(err.problems).toEqual([
      { path: 'backends.builtin.hash_lists[0]', rule: `file ${JSON.stringify(join(FIXTURE_DIR, 'nope.sha256'))} does not exist` },
    ]);
  });

  it('a missing block page is an error', () => {
    expectProblem('services:\n  a: {block_page: missing.html}\n', 'services.a.block_page', 'does not exist');
  });

  it('a block page that is a directory is an error', () => {
    expect(configError('services:\n  a: {block_page: pages}\n', {}, FIXTURE).problems[0]?.rule).toMatch(/is not a regular file$/);
  });

  it('a missing spool directory is an error', () => {
    expectProblem('spool: {directory: /no/such/dir}', 'spool.directory', 'directory "/no/such/dir" does not exist');
  });

  describe('with a temporary directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-config-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('a spool directory that is a file is an error', () => {
      expectProblem(`spool: {directory: "${FIXTURE}"}`, 'spool.directory', 'is not a directory');
    });

    it('an existing directory is accepted', () => {
      expect(parseConfig(`spool: {directory: "${dir}"}`, '/x.yaml', {}).spool.directory).toBe(dir);
    });

    // Parsed at load by the backend's own parser (src/backends/builtin/hash-list.ts), not first by
    // the backend when a server (or each cluster worker) builds it.
    it('a hash list with a bad line is an error naming its key path, the file, the line and the rule', () => {
      const good = join(dir, 'good.sha256');
      const bad = join(dir, 'bad.sha256');
      writeFileSync(good, `# ok\n${'a'.repeat(64)} Test.Threat\n`);
      writeFileSync(bad, `# hashes\n${'a'.repeat(64)}\n${'b'.repeat(63)} Short.One\nnot-a-hash\n`);
      const err = configError(`backends:\n  builtin: {type: builtin, hash_lists: [${good}, ${bad}]}\n`);
      const rule = `${bad}:3: expected a SHA-256 (64 hex digits), optionally followed by a threat name, got "${'b'.repeat(63)} Short.One"`;
      expect(err.problems).toEqual([{ path: 'backends.builtin.hash_lists[1]', rule }]);
      expect(err.message).toBe(`${err.file}: backends.builtin.hash_lists[1]: ${rule}`);
    });

    it('a hash list whose every line parses loads as its path', () => {
      const list = join(dir, 'fine.sha256');
      writeFileSync(list, `\uFEFF# comment\r\n\r\n${'C'.repeat(64)}: Named.Threat\r\n${'d'.repeat(64)}\r\n`);
      const builtin = parseConfig(`backends:\n  builtin: {type: builtin, hash_lists: [${list}]}\n`, '/x.yaml', {}).backends['builtin'];
      expect(builtin?.type === 'builtin' && builtin.hash_lists).toEqual([list]);
    });
  });
});
