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
  });

  it('malformed and unclosed references are errors', () => {
    const { problems } = substituteEnv({ a: '${1X}', b: ['${OPEN'] }, {});
    expect(problems).toEqual([
      { path: 'a', rule: expect.stringContaining('malformed reference "${1X}"') },
      { path: 'b[0]', rule: expect.stringContaining('unclosed "${"') },
    ]);
  });
});
