/** One test per field rule: the value is rejected, at its key path, with the rule and the value found. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { configError, expectProblem, SOURCE } from './helpers.js';

const server = (yaml: string) => `server:\n${yaml.replace(/^/gm, '  ')}\n`;
const limit = (key: string, value: string) => server(`limits:\n  ${key}: ${value}`);
const backend = (yaml: string) => `backends:\n  builtin:\n    type: builtin\n${yaml.replace(/^/gm, '    ')}\n`;
const service = (yaml: string) => `services:\n  respmod:\n${yaml.replace(/^/gm, '    ')}\n`;

describe('ranges and types', () => {
  it.each([
    ['server.listen must not be empty', server('listen: []'), 'server.listen', 'must be a non-empty list (got an empty list)'],
    ['port above 65535', server('listen: [{port: 65536}]'), 'server.listen[0].port', 'must be an integer between 0 and 65535 (got 65536)'],
    ['port below 0', server('listen: [{port: -1}]'), 'server.listen[0].port', 'must be an integer between 0 and 65535 (got -1)'],
    ['port not an integer', server('listen: [{port: 1.5}]'), 'server.listen[0].port', '(got 1.5)'],
    ['port as a string', server('listen: [{port: "1344"}]'), 'server.listen[0].port', '(got "1344")'],
    ['host not a host', server('listen: [{host: "not a host"}]'), 'server.listen[0].host', 'must be an IPv4 or IPv6 address or a host name (got "not a host")'],
    ['max_connections at least 1', server('max_connections: 0'), 'server.max_connections', 'must be an integer >= 1 (got 0)'],
    ['max_requests_per_connection not negative', server('max_requests_per_connection: -1'), 'server.max_requests_per_connection', 'must be an integer >= 0 (got -1)'],
    ['header_ms positive', server('timeouts: {header_ms: 0}'), 'server.timeouts.header_ms', 'must be an integer >= 1 (got 0)'],
    ['body_idle_ms positive', server('timeouts: {body_idle_ms: 0}'), 'server.timeouts.body_idle_ms', 'must be an integer >= 1'],
    ['keep_alive_ms positive', server('timeouts: {keep_alive_ms: -5}'), 'server.timeouts.keep_alive_ms', 'must be an integer >= 1'],
    ['write_idle_ms positive', server('timeouts: {write_idle_ms: 0}'), 'server.timeouts.write_idle_ms', 'must be an integer >= 1'],
    ['icap_header_bytes floor', limit('icap_header_bytes', '255'), 'server.limits.icap_header_bytes', 'must be an integer between 256 and 16777216 (got 255)'],
    ['icap_header_bytes ceiling', limit('icap_header_bytes', '16777217'), 'server.limits.icap_header_bytes', 'between 256 and 16777216'],
    ['http_header_bytes floor', limit('http_header_bytes', '100'), 'server.limits.http_header_bytes', 'between 256 and 16777216'],
    ['header_count floor', limit('header_count', '7'), 'server.limits.header_count', 'must be an integer between 8 and 10000'],
    ['header_count ceiling', limit('header_count', '10001'), 'server.limits.header_count', 'between 8 and 10000'],
    ['chunk_line_bytes floor', limit('chunk_line_bytes', '15'), 'server.limits.chunk_line_bytes', 'between 16 and 65536'],
    ['chunk_line_bytes ceiling', limit('chunk_line_bytes', '65537'), 'server.limits.chunk_line_bytes', 'between 16 and 65536'],
    ['body_bytes not negative', limit('body_bytes', '-1'), 'server.limits.body_bytes', 'must be an integer >= 0 (got -1)'],
    ['limits.preview_bytes ceiling', limit('preview_bytes', '16777217'), 'server.limits.preview_bytes', 'between 0 and 16777216'],
    ['spool.memory_bytes not negative', 'spool: {memory_bytes: -1}', 'spool.memory_bytes', 'must be an integer >= 0'],
    ['backend workers not negative', backend('workers: -1'), 'backends.builtin.workers', 'must be an integer >= 0 (got -1)'],
    ['backend timeout_ms positive', backend('timeout_ms: 0'), 'backends.builtin.timeout_ms', 'must be an integer >= 1'],
    ['backend eicar boolean', backend('eicar: "yes"'), 'backends.builtin.eicar', 'must be true or false (got "yes")'],
    ['backend hash_lists a list', backend('hash_lists: x.txt'), 'backends.builtin.hash_lists', 'must be a list'],
    ['backend type unknown', 'backends: {clam: {type: clamav}}', 'backends.clam.type', 'must be one of: builtin, clamd, metadefender, icap (got "clamav")'],
    ['backend type missing', 'backends: {clam: {workers: 1}}', 'backends.clam.type', 'must be one of: builtin, clamd, metadefender, icap (got nothing)'],
    ['backend name', 'backends: {"bad name": {type: builtin}}', 'backends["bad name"]', 'backend name must be made of letters, digits'],
    ['service name', 'services: {"a/b": {}}', 'services["a/b"]', 'service name must be made of letters, digits'],
    ['__proto__ is not a name', 'services:\n  __proto__: {}\n', 'services.__proto__', '"__proto__" cannot be a service name'],
    ['at least one service', 'services: {}', 'services', 'must define at least one service'],
    ['methods not empty', service('methods: []'), 'services.respmod.methods', 'must be a non-empty list'],
    ['methods known', service('methods: [OPTIONS]'), 'services.respmod.methods[0]', 'must be one of: REQMOD, RESPMOD (got "OPTIONS")'],
    ['methods unique', service('methods: [RESPMOD, RESPMOD]'), 'services.respmod.methods[1]', 'duplicate entry "RESPMOD"'],
    ['alias without leading slash', service('aliases: [/scan]'), 'services.respmod.aliases[0]', 'must be a path without a leading slash'],
    ['preview_bytes an integer', service('preview_bytes: abc'), 'services.respmod.preview_bytes', 'must be an integer between 0 and 65536 (got "abc")'],
    ['options_ttl_s positive', service('options_ttl_s: 0'), 'services.respmod.options_ttl_s', 'must be an integer >= 1 (got 0)'],
    ['allow_204 boolean', service('allow_204: maybe'), 'services.respmod.allow_204', 'must be true or false (got "maybe")'],
    ['service backends not empty', service('backends: []'), 'services.respmod.backends', 'must be a non-empty list'],
    ['service backends unique', service('backends: [builtin, builtin]'), 'services.respmod.backends[1]', 'duplicate entry "builtin"'],
    ['on_error block or allow', service('on_error: ignore'), 'services.respmod.on_error', 'must be one of: block, allow (got "ignore")'],
    ['cut_after_commit short-body or close', service('cut_after_commit: drop'), 'services.respmod.cut_after_commit', 'must be one of: short-body, close (got "drop")'],
    ['logging level', 'logging: {level: verbose}', 'logging.level', 'must be one of: fatal, error, warn, info, debug, trace, silent'],
    ['access_log boolean', 'logging: {access_log: 1}', 'logging.access_log', 'must be true or false (got 1)'],
    ['access_log_format json or squid', 'logging: {access_log_format: clf}', 'logging.access_log_format', 'must be one of: json, squid'],
    ['a section is a mapping', 'server: 3', 'server', 'must be a mapping (got 3)'],
  ])('%s', (_name, yaml, path, rule) => {
    expectProblem(yaml, path, rule);
  });

  it('the whole file must be a mapping', () => {
    expect(configError('- a\n').problems).toEqual([{ path: '', rule: 'must be a mapping (got a list)' }]);
  });

  it('boundary values are accepted', () => {
    const config = parseConfig(
      `${server('listen: [{port: 0}, {host: "::1", port: 65535}, {host: icap.example.com}]\nlimits: {body_bytes: 0, preview_bytes: 0}')}` +
        'services: {respmod: {preview_bytes: 0}}\n',
      SOURCE,
      {},
    );
    expect(config.server.listen.map((l) => `${l.host}:${l.port}`)).toEqual(['127.0.0.1:0', '::1:65535', 'icap.example.com:1344']);
    expect(config.server.limits.body_bytes).toBe(0);
  });
});

describe('unknown keys', () => {
  it('a misspelt key is an error naming the key and the valid ones', () => {
    expectProblem(server('listn: []'), 'server.listn', 'unknown key (expected one of: listen, max_connections, max_requests_per_connection, processes, tls, timeouts, limits)');
  });

  it('every unknown key is reported, at every depth', () => {
    const { problems } = configError('colour: red\nserver: {timeouts: {header: 1}}\n' + backend('eicr: true') + service('on_eror: allow'));
    expect(problems.map((p) => p.path)).toEqual([
      'server.timeouts.header',
      'backends.builtin.eicr',
      'services.respmod.on_eror',
      'colour',
    ]);
    for (const p of problems) expect(p.rule).toMatch(/^unknown key/);
  });
});

describe('YAML syntax', () => {
  it('a syntax error is reported with file, line and column', () => {
    const err = configError('server:\n  listen: [{port: 1344}\nlogging: {}\n');
    expect(err.problems[0]).toMatchObject({ path: '', line: 3, column: 1, rule: expect.stringMatching(/^YAML syntax error: /) });
    expect(err.message).toMatch(new RegExp(`^${SOURCE}:3:1: YAML syntax error: `));
  });

  it('a duplicate key is a syntax error at the second occurrence', () => {
    const err = configError('logging: {}\nlogging: {}\n');
    expect(err.problems[0]).toMatchObject({ line: 2, column: 1, rule: expect.stringContaining('unique') });
  });

  it('more than one YAML document is an error', () => {
    expect(configError('logging: {}\n---\nspool: {}\n').problems[0]?.rule).toBe(
      'YAML syntax error: the file must hold a single YAML document',
    );
  });
});
