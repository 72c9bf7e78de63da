import { expect } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/index.js';

export const SOURCE = '/etc/icap-bridge/icap-bridge.yaml';

/** The ConfigError `text` raises; fails the test if it loads. */
export function configError(text: string, env: NodeJS.ProcessEnv = {}, source = SOURCE): ConfigError {
  try {
    parseConfig(text, source, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

/** Asserts `text` is rejected with a problem at `path` whose rule contains `rule`. */
export function expectProblem(text: string, path: string, rule: string, env: NodeJS.ProcessEnv = {}): void {
  const { problems } = configError(text, env);
  expect(problems).toContainEqual({ path, rule: expect.stringContaining(rule) });
}
