import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { configError, expectProblem, SOURCE } from './helpers.js';

describe('cross-field rules', () => {
  it('a service backend must be defined under `backends`', () => {
    expectProblem('services:\n  reqmod:\n    backends: [clam]\n', 'services.reqmod.backends[0]', 'unknown backend "clam" (defined: builtin)');
  });

  it('a duplicate alias across services is an error at the second one', () => {
    expectProblem(
      'services:\n  a: {aliases: [scan]}\n  b: {aliases: [scan]}\n',
      'services.b.aliases[0]',
      'path "/scan" is already taken by an alias of service a',
    );
  });

  it('aliases are compared case-insensitively', () => {
    expectProblem('services:\n  a: {aliases: [Scan]}\n  b: {aliases: [sCAN]}\n', 'services.b.aliases[0]', 'already taken');
  });

  it("an alias may not equal another service's name", () => {
    expectProblem('services:\n  a: {}\n  b: {aliases: [A]}\n', 'services.b.aliases[0]', 'path "/A" is already taken by service a');
  });

  it('an alias may not repeat its own service name', () => {
    expectProblem('services:\n  a: {aliases: [a]}\n', 'services.a.aliases[0]', 'already taken by service a');
  });

  it('service names may not differ only in case', () => {
    expectProblem('services:\n  scan: {}\n  SCAN: {}\n', 'services.SCAN', 'path "/SCAN" is already taken by service scan');
  });

  it('a service preview may not exceed server.limits.preview_bytes', () => {
    expectProblem(
      'services:\n  a: {preview_bytes: 65537}\n',
      'services.a.preview_bytes',
      'must not exceed server.limits.preview_bytes (65536) (got 65537)',
    );
  });

  it('raising server.limits.preview_bytes raises the bound', () => {
    const text = 'server: {limits: {preview_bytes: 131072}}\nservices:\n  a: {preview_bytes: 131072}\n';
    expect(parseConfig(text, SOURCE, {}).services['a']?.preview_bytes).toBe(131_072);
    expectProblem('server: {limits: {preview_bytes: 512}}\nservices:\n  a: {}\n', 'services.a.preview_bytes', '(512) (got 1024)');
  });

  it('two listeners on the same address and port are an error; port 0 may repeat', () => {
    expectProblem('server: {listen: [{port: 1344}, {port: 1344}]}', 'server.listen[1]', 'duplicates server.listen[0]');
    expect(() => parseConfig('server: {listen: [{port: 0}, {port: 0}]}', SOURCE, {})).not.toThrow();
  });

  it('all cross-field problems are reported together', () => {
    const text = 'services:\n  a: {backends: [x, y]}\n  b: {aliases: [a]}\n';
    expect(configError(text).problems.map((p) => p.path)).toEqual(['services.a.backends[0]', 'services.a.backends[1]', 'services.b.aliases[0]']);
  });
});

describe('server.tls', () => {
  it('an enabled TLS listener needs cert and key', () => {
    expect(configError('server:\n  tls:\n    enabled: true\n').problems).toEqual([
      { path: 'server.tls.cert', rule: 'required when server.tls.enabled is true' },
      { path: 'server.tls.key', rule: 'required when server.tls.enabled is true' },
    ]);
  });
});
