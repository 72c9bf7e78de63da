/** services.NAME.rules and services.NAME.lists: what loads, and what each mistake is reported as. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { configError, expectProblem, SOURCE } from './helpers.js';

const svc = (body: string) => `services:\n  respmod:\n    methods: [RESPMOD]\n${body}`;

describe('services.NAME.rules', () => {
  it('loads a rule with every match key; action defaults to scan', () => {
    const config = parseConfig(
      svc(`    rules:
      - name: everything
        match:
          client: [10.0.0.0/8, 192.0.2.1, '2001:db8::/32']
          peer: [127.0.0.1]
          user: ['*@corp.example']
          method: [GET, POST]
          icap_method: [RESPMOD]
          host: ['*.example.com']
          url: ['http://example.com/*']
          content_type: ['application/*']
          min_size: 1
          max_size: 1000
          file_type: [exe, zip]
          partial: true
          headers:
            - { name: User-Agent, contains: curl, in: [request] }
            - { name: X-Scan, equals: 'yes', case_sensitive: true }
        on_error: { timeout: allow, too-large: block }
`),
      SOURCE,
      {},
    );
    const rule = config.services['respmod']!.rules![0]!;
    expect(rule).toMatchObject({ name: 'everything', action: 'scan', on_error: { timeout: 'allow', 'too-large': 'block' } });
    expect(rule.match?.headers).toHaveLength(2);
    expect(rule.match?.partial).toBe(true);
  });

  it('a service without rules or lists has neither key (defaults unchanged)', () => {
    const s = parseConfig(svc(''), SOURCE, {}).services['respmod']!;
    expect(s.rules).toBeUndefined();
    expect(s.lists).toBeUndefined();
  });

  const problems: [label: string, rules: string, path: string, rule: string][] = [
    ['a rule needs a name', '      - { action: allow }\n', 'services.respmod.rules[0].name', 'rule name must be made of'],
    ['unknown rule key', '      - { name: a, acton: allow }\n', 'services.respmod.rules[0].acton', 'unknown key'],
    ['unknown match key', '      - { name: a, match: { hots: [x] } }\n', 'services.respmod.rules[0].match.hots', 'unknown key'],
    ['bad action', '      - { name: a, action: skip }\n', 'services.respmod.rules[0].action', 'must be one of: scan, allow, block'],
    ['bad CIDR', '      - { name: a, match: { client: [10.0.0.0/33] } }\n', 'services.respmod.rules[0].match.client[0]', 'between 0 and 32'],
    ['not an address', '      - { name: a, match: { peer: [proxy.example] } }\n', 'services.respmod.rules[0].match.peer[0]', 'IPv4 or IPv6 address'],
    ['empty list never matches', '      - { name: a, match: { host: [] } }\n', 'services.respmod.rules[0].match.host', 'must be a non-empty list'],
    ['unknown file type', '      - { name: a, match: { file_type: [docx] } }\n', 'services.respmod.rules[0].match.file_type[0]', 'must be one of: exe'],
    ['bad ICAP method', '      - { name: a, match: { icap_method: [OPTIONS] } }\n', 'services.respmod.rules[0].match.icap_method[0]', 'must be one of'],
    ['bad HTTP method', '      - { name: a, match: { method: ["GE T"] } }\n', 'services.respmod.rules[0].match.method[0]', 'must be an HTTP method'],
    ['a url without a scheme and without *', '      - { name: a, match: { url: [www.example.com/x] } }\n', 'services.respmod.rules[0].match.url[0]', 'must be a URL with a scheme and host'],
    ['partial is a boolean', '      - { name: a, match: { partial: sometimes } }\n', 'services.respmod.rules[0].match.partial', 'must be true or false'],
    ['negative size', '      - { name: a, match: { min_size: -1 } }\n', 'services.respmod.rules[0].match.min_size', 'must be an integer >= 0'],
    ['min above max', '      - { name: a, match: { min_size: 10, max_size: 5 } }\n', 'services.respmod.rules[0].match.max_size', 'must be >= min_size (10)'],
    ['header without operator', '      - { name: a, match: { headers: [{ name: X-A }] } }\n', 'services.respmod.rules[0].match.headers[0]', 'needs exactly one of equals, contains, prefix, suffix (found none)'],
    ['header with two operators', '      - { name: a, match: { headers: [{ name: X-A, equals: a, prefix: b }] } }\n', 'services.respmod.rules[0].match.headers[0]', '(found equals, prefix)'],
    ['bad header source', '      - { name: a, match: { headers: [{ name: X-A, equals: a, in: [body] }] } }\n', 'services.respmod.rules[0].match.headers[0].in[0]', 'must be one of: icap, request, response'],
    ['backends on an allow rule', '      - { name: a, action: allow, backends: [builtin] }\n', 'services.respmod.rules[0].backends', 'only applies to action: scan (rule "a" has action: allow)'],
    ['on_error on a block rule', '      - { name: a, action: block, on_error: allow }\n', 'services.respmod.rules[0].on_error', 'only applies to action: scan'],
    ['bad on_error word', '      - { name: a, on_error: maybe }\n', 'services.respmod.rules[0].on_error', 'must be block, allow, or a mapping of outcome to block|allow'],
    ['unknown outcome in on_error', '      - { name: a, on_error: { timout: allow } }\n', 'services.respmod.rules[0].on_error.timout', 'unknown key'],
    ['bad action in on_error', '      - { name: a, on_error: { timeout: maybe } }\n', 'services.respmod.rules[0].on_error', 'must be block, allow, or a mapping'],
    ['duplicate rule names', '      - { name: a }\n      - { name: a }\n', 'services.respmod.rules[1].name', 'duplicate rule name "a" (also rules[0])'],
    ['unknown backend in a rule', '      - { name: deep, backends: [builtin, clamd] }\n', 'services.respmod.rules[0].backends[1]', 'unknown backend "clamd" in rule "deep" (defined: builtin)'],
  ];
  it.each(problems)('%s', (_label, rules, path, rule) => {
    expectProblem(svc(`    rules:\n${rules}`), path, rule);
  });

  it('errors name the file', () => {
    expect(configError(svc('    rules:\n      - { name: a, action: skip }\n')).message).toContain(`${SOURCE}: services.respmod.rules[0].action:`);
  });
});

describe('services.NAME.lists', () => {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-lists-'));
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return name;
  };
  const source = join(dir, 'icap-bridge.yaml');
  const load = (lists: string) => parseConfig(svc(`    lists:\n${lists}`), source, {});
  const problemsOf = (lists: string) => {
    try {
      load(lists);
    } catch (err) {
      return (err as { problems: { path: string; rule: string }[] }).problems;
    }
    throw new Error('expected a ConfigError');
  };

  it('reads every list kind, relative to the config file', () => {
    const hash = 'F'.repeat(64);
    write('h.sha256', `# comment\n${hash} note\n`);
    write('u.txt', 'http://Example.com/x/\n');
    write('hosts.txt', 'Evil.example\n*.bad.example\n');
    const lists = load(`      allow_sha256: [h.sha256]
      deny_sha256: [h.sha256]
      allow_urls: [u.txt]
      deny_urls: [u.txt]
      allow_hosts: [hosts.txt]
      deny_hosts: [hosts.txt, hosts.txt]
`).services['respmod']!.lists!;
    expect(lists.allow_sha256).toEqual([{ file: join(dir, 'h.sha256'), entries: ['f'.repeat(64)] }]);
    expect(lists.deny_urls).toEqual([{ file: join(dir, 'u.txt'), entries: ['http://example.com/x/'] }]);
    expect(lists.deny_hosts.map((l) => l.entries)).toEqual([
      ['evil.example', '*.bad.example'],
      ['evil.example', '*.bad.example'],
    ]);
  });

  it('list keys left out are empty', () => {
    write('one.txt', 'a.example\n');
    expect(load('      deny_hosts: [one.txt]\n').services['respmod']!.lists!.allow_sha256).toEqual([]);
  });

  it('a missing list file is an error naming the key and the file', () => {
    expect(problemsOf('      deny_hosts: [nope.txt]\n')).toContainEqual({
      path: 'services.respmod.lists.deny_hosts[0]',
      rule: `file ${JSON.stringify(join(dir, 'nope.txt'))} does not exist`,
    });
  });

  it('a bad line is an error naming the key, the file and the line', () => {
    write('bad.sha256', `${'a'.repeat(64)}\nnot-a-hash\n`);
    expect(problemsOf('      deny_sha256: [bad.sha256]\n')).toContainEqual({
      path: 'services.respmod.lists.deny_sha256[0]',
      rule: `list file ${JSON.stringify(join(dir, 'bad.sha256'))} line 2: expected a SHA-256 (64 hex digits) (got "not-a-hash")`,
    });
  });

  it('many bad lines: the first three, then a count', () => {
    write('worse.txt', 'a b\nc d\ne f\ng h\ni j\n');
    const rules = problemsOf('      deny_hosts: [worse.txt]\n').map((p) => p.rule);
    expect(rules).toHaveLength(4);
    expect(rules[3]).toContain(': 2 more invalid line(s)');
  });

  it('an unknown list key is an error', () => {
    expect(problemsOf('      deny_domains: []\n')).toContainEqual({ path: 'services.respmod.lists.deny_domains', rule: expect.stringContaining('unknown key') });
  });
});
