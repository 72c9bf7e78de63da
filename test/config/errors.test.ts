import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile } from '../../src/config/index.js';
import { configError, SOURCE } from './helpers.js';

describe('ConfigError', () => {
  it('has a stable code, the file and the problems', () => {
    const err = configError('server: {max_connections: 0}');
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ConfigError');
    expect(err.code).toBe('ICAP_ERR_CONFIG');
    expect(err.file).toBe(SOURCE);
    expect(err.problems).toEqual([{ path: 'server.max_connections', rule: 'must be an integer >= 1 (got 0)' }]);
  });

  it('the message is one `FILE: key.path: rule` line per problem', () => {
    const err = configError('services:\n  respmod:\n    preview_bytes: abc\n', {}, '/etc/icap-bridge.yaml');
    expect(err.message).toBe('/etc/icap-bridge.yaml: services.respmod.preview_bytes: must be an integer between 0 and 65536 (got "abc")');
  });

  it('reports every problem, not just the first', () => {
    const err = configError('server: {max_connections: 0, listen: [{port: -1}]}\nlogging: {level: loud}\nspool: {extra: 1}\n', {}, '/x.yaml');
    expect(err.message.split('\n')).toEqual([
      '/x.yaml: server.listen[0].port: must be an integer between 0 and 65535 (got -1)',
      '/x.yaml: server.max_connections: must be an integer >= 1 (got 0)',
      '/x.yaml: spool.extra: unknown key (expected one of: memory_bytes, directory)',
      '/x.yaml: logging.level: must be one of: fatal, error, warn, info, debug, trace, silent (got "loud")',
    ]);
  });

  it('an unreadable file is a ConfigError naming the file', () => {
    const load = () => loadConfigFile('/no/such/icap-bridge.yaml', {});
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/^\/no\/such\/icap-bridge\.yaml: cannot read the file: ENOENT/);
  });
});
