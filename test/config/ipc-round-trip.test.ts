/**
 * A cluster primary sends its accepted configuration to the workers over node:cluster's IPC channel,
 * which serializes messages as JSON (src/cluster/messages.ts). What a worker runs must be exactly
 * what the primary validated: a value JSON cannot carry (a Set, a Map, a RegExp, a Date, a field
 * set to undefined, a function) would arrive changed or missing without any error. This holds the
 * loader's output to JSON's data model, for configurations that use every section.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig, type Config } from '../../src/config/index.js';
import { MULTI_BACKEND_EXAMPLE } from '../helpers/multi-backend-example.js';
import { FileSnapshots } from '../../src/cluster/file-snapshots.js';
import type { ToWorker } from '../../src/cluster/messages.js';
import { configNamingEveryFile } from '../cluster/config-fixture.js';

const viaIpc = (config: Config): unknown => JSON.parse(JSON.stringify(config));

describe('the configuration as a cluster worker receives it (JSON over IPC)', () => {
  it('config/examples/multi-backend.yaml (every backend type) arrives unchanged', () => {
    const config = loadConfigFile(MULTI_BACKEND_EXAMPLE, { MD_APIKEY: 'k' });
    expect(viaIpc(config)).toStrictEqual(config);
  });

  it('rules of every match key, a per-outcome failure matrix and every kind of list arrive unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-ipc-'));
    const list = (name: string, lines: string[]): string => {
      writeFileSync(join(dir, name), `# list\n${lines.join('\n')}\n`);
      return name;
    };
    const text = `server:
  listen: [{ host: 127.0.0.1, port: 1344 }]
  processes: 2
backends:
  builtin: { type: builtin }
services:
  respmod:
    methods: [RESPMOD, REQMOD]
    backends: [builtin]
    on_error: allow
    rules:
      - name: all-keys
        match:
          client: [10.0.0.0/8]
          peer: [127.0.0.1]
          user: ['*@corp.example']
          method: [GET]
          icap_method: [RESPMOD]
          host: ['*.example.com']
          url: ['http://example.com/*']
          content_type: ['application/*']
          min_size: 1
          max_size: 1000
          file_type: [exe]
          partial: false
          headers: [{ name: X-Scan, equals: 'yes', in: [icap], case_sensitive: true }]
        on_error: { too-large: allow }
      - name: pieces
        match: { partial: true }
        action: block
    lists:
      allow_hosts: [${list('allow.hosts', ['good.example', '*.cdn.example'])}]
      deny_urls: [${list('deny.urls', ['http://bad.example/', '*.scr'])}]
      deny_sha256: [${list('deny.sha256', ['a'.repeat(64) + ' note'])}]
`;
    const config = parseConfig(text, join(dir, 'icap-bridge.yaml'), {});
    expect(config.services['respmod']!.lists?.deny_sha256[0]!.entries).toHaveLength(1);
    expect(viaIpc(config)).toStrictEqual(config);
  });

  it('a configuration message, with the copies of every file the configuration names, arrives unchanged', async () => {
    const { dir, config } = configNamingEveryFile();
    const snapshots = await FileSnapshots.create(dir, process.pid, config);
    try {
      const message: ToWorker = { type: 'icap-bridge:config', config, files: await snapshots.take(0, config) };
      expect(Object.keys(message.files).length).toBeGreaterThan(0);
      expect(JSON.parse(JSON.stringify(message))).toStrictEqual(message);
    } finally {
      snapshots.removeAll();
    }
  });
});
