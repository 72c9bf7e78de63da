/** `type: metadefender` in the configuration: defaults, each rule, and createBackends() building it. */
import { afterAll, describe, expect, it } from 'vitest';
import { closeBackends, createBackends } from '../../src/backends/create-backends.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { startEmulator, type EmulatorHandle } from '../../emulators/metadefender/emulator.js';

const SOURCE = '/etc/icap-bridge/icap-bridge.yaml';
/** A config whose only service scans with the `core` backend configured by `yaml`. */
const core = (yaml: string) => `backends:\n  core:\n    type: metadefender\n${yaml.replace(/^/gm, '    ')}\nservices:\n  avscan:\n    backends: [core]\n`;

function problems(text: string, env: NodeJS.ProcessEnv = {}): { path: string; rule: string }[] {
  try {
    parseConfig(text, SOURCE, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => ({ path: p.path, rule: p.rule }));
  }
  throw new Error('expected a ConfigError');
}

describe('metadefender backend config', () => {
  it('fills every default', () => {
    const config = parseConfig(core('endpoints: ["http://127.0.0.1:8008"]'), SOURCE, {});
    expect(config.backends['core']).toEqual({
      type: 'metadefender',
      endpoints: ['http://127.0.0.1:8008'],
      apikey: '',
      rule: '',
      timeout_ms: 120_000,
      poll_initial_ms: 50,
      poll_max_ms: 1_000,
      hash_lookup: false,
      sanitize: false,
      max_file_bytes: 0,
      balance: 'round-robin',
      weights: {},
      max_concurrency: 64,
      max_queue: 256,
      eject_after: 3,
      cooldown_ms: 10_000,
      health_interval_ms: 5_000,
      health_timeout_ms: 2_000,
      dns: { enabled: false, server: '', min_ttl_ms: 1_000, max_ttl_ms: 300_000 },
    });
  });

  it('takes the apikey from the environment', () => {
    const text = core('endpoints: ["https://core-1:8008", "http://core-2:8008/"]\napikey: ${MD_APIKEY:-}\nrule: "File scan"');
    expect(parseConfig(text, SOURCE, { MD_APIKEY: 's3cret' }).backends['core']).toMatchObject({ apikey: 's3cret', rule: 'File scan' });
    expect(parseConfig(text, SOURCE, {}).backends['core']).toMatchObject({ apikey: '' });
  });

  it.each([
    ['endpoints missing', core('rule: x'), 'backends.core.endpoints'],
    ['endpoints empty', core('endpoints: []'), 'backends.core.endpoints'],
    ['endpoint not a URL', core('endpoints: ["core-1:8008"]'), 'backends.core.endpoints[0]'],
    ['endpoint not http', core('endpoints: ["ftp://core-1"]'), 'backends.core.endpoints[0]'],
    ['endpoint with a query', core('endpoints: ["http://core-1:8008/?a=1"]'), 'backends.core.endpoints[0]'],
    ['endpoint duplicated', core('endpoints: ["http://a:1", "http://a:1"]'), 'backends.core.endpoints[1]'],
    ['timeout_ms positive', core('endpoints: ["http://a:1"]\ntimeout_ms: 0'), 'backends.core.timeout_ms'],
    ['poll_initial_ms positive', core('endpoints: ["http://a:1"]\npoll_initial_ms: 0'), 'backends.core.poll_initial_ms'],
    ['poll_max_ms below poll_initial_ms', core('endpoints: ["http://a:1"]\npoll_initial_ms: 500\npoll_max_ms: 100'), 'backends.core.poll_max_ms'],
    ['hash_lookup boolean', core('endpoints: ["http://a:1"]\nhash_lookup: "yes"'), 'backends.core.hash_lookup'],
    ['sanitize boolean', core('endpoints: ["http://a:1"]\nsanitize: 1'), 'backends.core.sanitize'],
    ['max_file_bytes not negative', core('endpoints: ["http://a:1"]\nmax_file_bytes: -1'), 'backends.core.max_file_bytes'],
    ['unknown key', core('endpoints: ["http://a:1"]\nworkflow: x'), 'backends.core.workflow'],
    ['weights name an endpoint', core('endpoints: ["http://a:1"]\nweights: { "http://b:1": 2 }'), 'backends.core.weights["http://b:1"]'],
    ['max_concurrency at least 1', core('endpoints: ["http://a:1"]\nmax_concurrency: 0'), 'backends.core.max_concurrency'],
    ['dns.enabled boolean', core('endpoints: ["http://a:1"]\ndns: { enabled: "yes" }'), 'backends.core.dns.enabled'],
  ])('%s', (_what, text, path) => {
    expect(problems(text).map((p) => p.path)).toContain(path);
  });

  describe('createBackends', () => {
    let em: EmulatorHandle;
    afterAll(() => em?.close());

    it('builds a working backend from the config', async () => {
      em = await startEmulator({ scanDurationMs: 0 });
      const text = core(`endpoints: ["${em.url}"]\npoll_initial_ms: 5\npoll_max_ms: 20`);
      const backends = await createBackends(parseConfig(text, SOURCE, {}));
      try {
        const b = backends.get('core')!;
        expect(b.version).toMatch(/^metadefender 5\.10\.1 engines=/);
        const r = await b.scan(spooledBodyFromBuffer(Buffer.from('hello')), { transactionId: 't', method: 'REQMOD', clientAddress: '::1' }, new AbortController().signal);
        expect(r).toMatchObject({ outcome: 'clean', backend: 'core' });
      } finally {
        await closeBackends(backends);
      }
    });
  });
});
