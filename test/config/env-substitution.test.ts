import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { substituteEnv } from '../../src/config/env-substitution.js';
import { configError, expectProblem, SOURCE } from './helpers.js';

const host = (value: string, env: NodeJS.ProcessEnv) =>
  parseConfig(`server:\n  listen:\n    - host: "${value}"\n`, SOURCE, env).server.listen[0]?.host;

describe('${ENV} substitution', () => {
  it('${NAME} is replaced by the variable', () => {
    expect(host('${ICAP_HOST}', { ICAP_HOST: '10.0.0.7' })).toBe('10.0.0.7');
  });

  it('${NAME:-default} uses the variable when set', () => {
    expect(host('${ICAP_HOST:-0.0.0.0}', { ICAP_HOST: '10.0.0.7' })).toBe('10.0.0.7');
  });

  it('${NAME:-default} uses the default when the variable is unset or empty', () => {
    expect(host('${ICAP_HOST:-0.0.0.0}', {})).toBe('0.0.0.0');
    expect(host('${ICAP_HOST:-0.0.0.0}', { ICAP_HOST: '' })).toBe('0.0.0.0');
  });

  it('works inside a longer string, several times', () => {
    expect(host('${SUB}.${ZONE:-example.com}', { SUB: 'icap' })).toBe('icap.example.com');
  });

  it('an unset variable without default is an error naming the key path and the variable', () => {
    expectProblem('logging:\n  level: ${LOG_LEVEL}\n', 'logging.level', 'environment variable LOG_LEVEL is not set');
  });

  it('the unset variable is the only problem reported for that key', () => {
    expect(configError('logging:\n  level: ${LOG_LEVEL}\n').problems).toHaveLength(1);
  });

  it('a value from the environment is never echoed in an error (it may be a secret)', () => {
    const err = configError('logging:\n  level: ${LOG_LEVEL}\n', { LOG_LEVEL: 's3cret' });
    expect(err.message).toContain('logging.level: must be one of');
    expect(err.message).toContain('(got the value of ${LOG_LEVEL})');
    expect(err.message).not.toContain('s3cret');
  });

  it('substitution yields strings only: a number from the environment stays a string', () => {
    expectProblem('server:\n  max_connections: ${MAX:-10}\n', 'server.max_connections', 'must be an integer >= 1');
  });

  it('$${ writes a literal ${, and a lone $ is kept', () => {
    expect(substituteEnv({ a: 'x$${HOME}', b: 'pa$$word' }, { HOME: '/root' }).value).toEqual({ a: 'x${HOME}', b: 'pa$$word' });
  });

  it('keys are not substituted', () => {
    expect(substituteEnv({ '${A}': '${A}' }, { A: 'v' }).value).toEqual({ '${A}': 'v' });
    expect(substituteEnv({ services: { x: { weights: { '${A}': 1 } } } }, { A: 'v' }).value).toEqual({ services: { x: { weights: { '${A}': 1 } } } });
  });

  it("a pool's weights keys are endpoints and are substituted like them", () => {
    const yaml = [
      'backends:',
      '  clamav:',
      '    type: clamd',
      '    endpoints: ["${CLAMD_A}:3310", "${CLAMD_B:-clamd-b}:3310"]',
      '    balance: weighted',
      '    weights: { "${CLAMD_A}:3310": 1, "${CLAMD_B:-clamd-b}:3310": 3 }',
      'services:',
      '  avscan:',
      '    backends: [clamav]',
      '',
    ].join('\n');
    const config = parseConfig(yaml, SOURCE, { CLAMD_A: 'clamd-a' });
    const clamav = config.backends['clamav'] as { endpoints: readonly string[]; weights: Readonly<Record<string, number>> };
    expect(clamav.endpoints).toEqual(['clamd-a:3310', 'clamd-b:3310']);
    expect(clamav.weights).toEqual({ 'clamd-a:3310': 1, 'clamd-b:3310': 3 });
  });

  it('weights keys: an unset variable, or two keys naming one endpoint, is an error at the key', () => {
    const weights = (w: Record<string, number>, env: NodeJS.ProcessEnv) => substituteEnv({ backends: { c: { weights: w } } }, env).problems;
    expect(weights({ '${NOPE}:3310': 2 }, {})).toEqual([
      { path: 'backends.c.weights["${NOPE}:3310"]', rule: expect.stringContaining('environment variable NOPE is not set') },
    ]);
    expect(weights({ '${A}:3310': 2, 'h:3310': 3 }, { A: 'h' })).toEqual([
      { path: 'backends.c.weights["h:3310"]', rule: 'names endpoint "h:3310" again' },
    ]);
  });

  it('malformed and unclosed references are errors', () => {
    const { problems } = substituteEnv({ a: '${1X}', b: ['${OPEN'] }, {});
    expect(problems).toEqual([
      { path: 'a', rule: expect.stringContaining('malformed reference "${1X}"') },
      { path: 'b[0]', rule: expect.stringContaining('unclosed "${"') },
    ]);
  });

  it('a reference nested in a default is an error naming the key, set or unset', () => {
    // Before: the first `}` closed the outer reference, giving "k}" or a literal "${B}" silently.
    for (const env of [{}, { B: 'k' }, { A: '', B: 'k' }]) {
      const { problems } = substituteEnv({ server: { name: '${A:-${B}}' } }, env);
      expect(problems).toEqual([{ path: 'server.name', rule: expect.stringContaining('nested reference in the default of ${A:-…}') }]);
    }
    expect(substituteEnv({ a: '${A:-${B}}' }, { A: 'set' }).problems).toHaveLength(1);
  });
});
