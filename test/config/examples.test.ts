/**
 * config/examples/multi-backend.yaml through the real loader (read → YAML → ${ENV} → schema →
 * cross-field rules), with the environment a deployment would give it. The server serving the
 * same file against real engines is in test/integration/multi-engine.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/index.js';
import { MULTI_BACKEND_EXAMPLE, withCoreWeightsRenamed } from '../helpers/multi-backend-example.js';

const ENV = { MD_APIKEY: 'md-secret-key' };

describe('config/examples/multi-backend.yaml', () => {
  it('loads unchanged from disk with only MD_APIKEY set: defaults of every ${NAME:-default} apply', () => {
    const config = loadConfigFile(MULTI_BACKEND_EXAMPLE, ENV);
    expect(config.server.listen).toEqual([{ host: '0.0.0.0', port: 1344 }]);
    expect(config.admin).toEqual({ enabled: true, host: '127.0.0.1', port: 9090 });
    expect(config.backends.clamav).toMatchObject({
      type: 'clamd',
      endpoints: ['clamd-1.internal:3310', '/run/clamav/clamd.ctl'],
      balance: 'least-outstanding',
      eject_after: 3,
      cooldown_ms: 10_000,
    });
    expect(config.backends.core).toMatchObject({
      type: 'metadefender',
      endpoints: ['http://md-core-1.internal:8008', 'http://md-core-2.internal:8008', 'http://md-core-3.internal:8008'],
      apikey: 'md-secret-key',
      hash_lookup: true,
      sanitize: true,
      balance: 'weighted',
      weights: { 'http://md-core-1.internal:8008': 1, 'http://md-core-2.internal:8008': 1, 'http://md-core-3.internal:8008': 3 },
    });
    expect(config.backends.builtin).toMatchObject({ type: 'builtin', eicar: true });
    expect(config.backends.upstream).toMatchObject({
      type: 'icap',
      endpoints: ['icap://scanner-1:1344/avscan', 'icap://scanner-2:1344/avscan'],
      balance: 'round-robin',
      max_concurrency: 16,
    });
    expect(config.services.avscan).toMatchObject({ methods: ['RESPMOD'], on_error: 'block', backends: ['clamav', 'core', 'builtin', 'upstream'] });
    expect(config.services.reqmod).toMatchObject({ methods: ['REQMOD'], backends: ['clamav', 'builtin'], on_error: 'allow' });
  });

  it('points every endpoint elsewhere through the environment (weights renamed to match)', () => {
    const text = withCoreWeightsRenamed(readFileSync(MULTI_BACKEND_EXAMPLE, 'utf8'), {
      'http://md-core-1.internal:8008': 'http://127.0.0.1:8001',
      'http://md-core-2.internal:8008': 'http://127.0.0.1:8002',
      'http://md-core-3.internal:8008': 'https://127.0.0.1:8443',
    });
    const config = parseConfig(text, MULTI_BACKEND_EXAMPLE, {
      ...ENV,
      ICAP_LISTEN_HOST: '127.0.0.1',
      ICAP_ADMIN_HOST: '127.0.0.1',
      CLAMD_TCP: '127.0.0.1:3310',
      CLAMD_SOCKET: '/var/run/clamd.sock',
      MD_CORE_1: 'http://127.0.0.1:8001',
      MD_CORE_2: 'http://127.0.0.1:8002',
      MD_CORE_3: 'https://127.0.0.1:8443',
      ICAP_UPSTREAM_1: 'icap://127.0.0.1:1345/avscan',
      ICAP_UPSTREAM_2: 'icaps://127.0.0.1:11345/avscan',
    });
    expect(config.server.listen[0]!.host).toBe('127.0.0.1');
    expect(config.backends.clamav).toMatchObject({ endpoints: ['127.0.0.1:3310', '/var/run/clamd.sock'] });
    expect(config.backends.core).toMatchObject({
      endpoints: ['http://127.0.0.1:8001', 'http://127.0.0.1:8002', 'https://127.0.0.1:8443'],
      weights: { 'https://127.0.0.1:8443': 3 },
    });
    expect(config.backends.upstream).toMatchObject({ endpoints: ['icap://127.0.0.1:1345/avscan', 'icaps://127.0.0.1:11345/avscan'] });
  });

  it('MD_CORE_n overridden without renaming the weights: rejected at the weight key, not silently unweighted', () => {
    let error: unknown;
    try {
      loadConfigFile(MULTI_BACKEND_EXAMPLE, { ...ENV, MD_CORE_3: 'http://127.0.0.1:8003' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toContainEqual({
      path: 'backends.core.weights["http://md-core-3.internal:8008"]',
      rule: expect.stringContaining('names no endpoint'),
    });
  });

  it('refuses to load without MD_APIKEY, naming the variable and never a value', () => {
    let error: unknown;
    try {
      loadConfigFile(MULTI_BACKEND_EXAMPLE, {});
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toContainEqual({ path: 'backends.core.apikey', rule: expect.stringContaining('MD_APIKEY is not set') });
  });
});
