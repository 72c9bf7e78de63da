import { readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfigPath, loadConfigFile, parseConfig } from '../../src/config/index.js';
import { SOURCE } from './helpers.js';

const BLOCK_PAGE = join(defaultConfigPath(), '..', 'block-page.html');

const service = (methods: string[], aliases: string[]) => ({
  methods,
  aliases,
  preview_bytes: 1024,
  options_ttl_s: 3600,
  allow_204: true,
  backends: ['builtin'],
  on_error: 'block',
  block_page: BLOCK_PAGE,
  commit_on_idle: { enabled: true, idle_ms: 100, max_bytes: 256 },
  content_decoding: { enabled: true, max_decoded_bytes: 536_870_912, max_ratio: 1000 },
  multipart: { enabled: true, max_parts: 1000 },
  allow_206: false,
  trickle: { enabled: false, min_body_bytes: 10_485_760, hold_back_bytes: 1_048_576 },
  cut_after_commit: 'short-body',
});

const DEFAULTS = {
  source: SOURCE,
  server: {
    listen: [{ host: '127.0.0.1', port: 1344 }],
    max_connections: 512,
    max_requests_per_connection: 100,
    processes: 1,
    tls: { enabled: false, listen: [{ host: '127.0.0.1', port: 11_344 }] },
    timeouts: { shutdown_grace_ms: 10_000, header_ms: 30_000, body_idle_ms: 300_000, keep_alive_ms: 75_000, write_idle_ms: 900_000 },
    limits: {
      icap_header_bytes: 65_536,
      http_header_bytes: 65_536,
      header_count: 10_000,
      chunk_line_bytes: 1024,
      body_bytes: 17_179_869_184,
      preview_bytes: 65_536,
    },
  },
  spool: { memory_bytes: 1_048_576, directory: tmpdir() },
  backends: { builtin: { type: 'builtin', workers: 0, inline_max_bytes: 65_536, timeout_ms: 120_000, eicar: true, hash_lists: [] } },
  services: {
    respmod: service(['RESPMOD'], ['OMSScanResp-AV']),
    reqmod: service(['REQMOD'], ['OMSScanReq-AV']),
    avscan: service(['REQMOD', 'RESPMOD'], ['virus_scan', 'squidclamav', 'srv_clamav']),
  },
  admin: { enabled: false, host: '127.0.0.1', port: 9090 },
  logging: { level: 'info', access_log: true, access_log_format: 'json' },
  cache: { enabled: true, max_entries: 10_000, ttl_s: 3600, max_bytes: 16_777_216 },
};

describe('defaults', () => {
  it('an empty file loads to the full default config', () => {
    expect(parseConfig('', SOURCE, {})).toEqual(DEFAULTS);
  });

  it('`{}` and a comments-only file load to the defaults too', () => {
    expect(parseConfig('{}', SOURCE, {})).toEqual(DEFAULTS);
    expect(parseConfig('# nothing\n', SOURCE, {})).toEqual(DEFAULTS);
  });

  it('a section left empty (every line commented out) means its defaults', () => {
    expect(parseConfig('server:\n  # listen: []\nspool:\n', SOURCE, {})).toEqual(DEFAULTS);
  });

  it('a partial section keeps the defaults of the keys it omits', () => {
    const config = parseConfig('server:\n  timeouts:\n    header_ms: 5\n', SOURCE, {});
    expect(config.server.timeouts).toEqual({ shutdown_grace_ms: 10_000, header_ms: 5, body_idle_ms: 300_000, keep_alive_ms: 75_000, write_idle_ms: 900_000 });
  });

  it('writing `services` replaces the default services; omitted service keys get field defaults', () => {
    const config = parseConfig('services:\n  scan: {}\n', SOURCE, {});
    expect(Object.keys(config.services)).toEqual(['scan']);
    expect(config.services['scan']).toEqual({ ...service(['REQMOD', 'RESPMOD'], []) });
  });

  it('the shipped config/icap-bridge.yaml loads and equals the defaults', () => {
    const path = defaultConfigPath();
    expect(loadConfigFile(path, {})).toEqual({ ...DEFAULTS, source: path });
  });

  it('defaultConfigPath() is the absolute path of the shipped file', () => {
    const path = defaultConfigPath();
    expect(isAbsolute(path)).toBe(true);
    expect(path.endsWith(join('config', 'icap-bridge.yaml'))).toBe(true);
    expect(statSync(path).isFile()).toBe(true);
  });

  it('the shipped block page is small, self-contained and has every placeholder', () => {
    const html = readFileSync(BLOCK_PAGE, 'utf8');
    expect(Buffer.byteLength(html)).toBeLessThan(3072);
    expect(html).toContain('<title>Blocked by icap-bridge</title>');
    for (const name of ['threat', 'url', 'transaction_id', 'service', 'reason']) expect(html).toContain(`{{${name}}}`);
    expect(html).not.toMatch(/\b(?:src|href)=|@import|url\(/);
  });
});

describe('the loaded config', () => {
  it('is deeply frozen', () => {
    const config = parseConfig('', SOURCE, {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.server.listen)).toBe(true);
    expect(Object.isFrozen(config.server.listen[0])).toBe(true);
    expect(Object.isFrozen(config.services['respmod']?.aliases)).toBe(true);
    expect(() => {
      (config.server.timeouts as { header_ms: number }).header_ms = 1;
    }).toThrow(TypeError);
  });

  it('carries the absolute path of its source', () => {
    expect(parseConfig('', 'relative/dir/x.yaml', {}).source).toBe(join(process.cwd(), 'relative/dir/x.yaml'));
  });
});
