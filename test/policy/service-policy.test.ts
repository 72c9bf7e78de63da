/** Lists before rules, deny before allow, and when an outcome is final (may answer before the body ends). */
import { describe, expect, it } from 'vitest';
import { compileServicePolicy, evaluatePolicy, type BodyFacts, type PolicyOutcome, type ServicePolicyConfig } from '../../src/policy/index.js';
import { attrs } from './helpers.js';

const GOOD = 'a'.repeat(64);
const BAD = 'b'.repeat(64);
const file = (...entries: string[]) => [{ file: '/lists/x', entries }];

const base: ServicePolicyConfig = {
  backends: ['builtin'],
  on_error: 'block',
  rules: [
    { name: 'trusted', match: { host: ['trusted.example'] }, action: 'allow' },
    { name: 'no-exe', match: { file_type: ['exe'] }, action: 'block' },
    { name: 'deep', match: { content_type: ['application/zip'] }, action: 'scan', backends: ['clamd', 'md'], on_error: { timeout: 'allow' } },
  ],
};

function outcome(config: ServicePolicyConfig, a = attrs(), facts: BodyFacts = { complete: false }): string {
  const o: PolicyOutcome = evaluatePolicy(compileServicePolicy(config), a, facts);
  switch (o.kind) {
    case 'pending':
      return 'pending';
    case 'list':
      return `${o.action} by ${o.hit.list}${o.final ? '' : ' (provisional)'}`;
    case 'rule':
      return `${o.rule.action} by ${o.rule.name ?? '(service)'}${o.final ? '' : ' (provisional)'}`;
  }
}

const host = (h: string) => attrs({ request: [['Host', h]], requestLine: `GET http://${h}/f HTTP/1.1` });

describe('evaluatePolicy: precedence', () => {
  const withLists: ServicePolicyConfig = {
    ...base,
    lists: { deny_hosts: file('trusted.example', 'evil.example'), allow_hosts: file('partner.example', 'evil.example'), deny_sha256: file(BAD), allow_sha256: file(GOOD) },
  };

  it('a deny list beats an allow list and every rule', () => {
    expect(outcome(withLists, host('trusted.example'))).toBe('block by deny_hosts');
    expect(outcome(withLists, host('evil.example'))).toBe('block by deny_hosts');
  });

  it('an allow list beats the rules', () => {
    expect(outcome(withLists, host('partner.example'), { complete: true, size: 2, fileTypes: ['exe'], sha256: GOOD })).toBe('allow by allow_hosts');
  });

  it('hash lists apply once the body is complete: deny hash beats an allowed host', () => {
    expect(outcome(withLists, host('partner.example'), { complete: true, size: 2, fileTypes: ['unknown'], sha256: BAD })).toBe('block by deny_sha256');
    expect(outcome(withLists, host('x.example'), { complete: true, size: 2, fileTypes: ['exe'], sha256: GOOD })).toBe('allow by allow_sha256');
  });

  it('hash lists see what an encoded or multipart body holds: the decoded body both ways, a part for deny only', () => {
    const X = 'c'.repeat(64);
    const facts = (extra: Partial<BodyFacts>): BodyFacts => ({ complete: true, size: 2, fileTypes: ['unknown'], sha256: X, ...extra });
    expect(outcome(withLists, host('x.example'), facts({ decodedSha256: BAD }))).toBe('block by deny_sha256');
    expect(outcome(withLists, host('x.example'), facts({ pieceSha256s: [X, BAD] }))).toBe('block by deny_sha256');
    expect(outcome(withLists, host('x.example'), facts({ decodedSha256: GOOD }))).toBe('allow by allow_sha256');
    // One known-good part says nothing about the others.
    expect(outcome(withLists, host('x.example'), facts({ pieceSha256s: [GOOD] }))).toBe('scan by (service)');
    // A known-bad decoded body is blocked even when its compressed bytes are allow-listed.
    expect(outcome(withLists, host('x.example'), facts({ sha256: GOOD, decodedSha256: BAD }))).toBe('block by deny_sha256');
  });

  it('rules in order, then the implicit rule', () => {
    expect(outcome(base, host('trusted.example'))).toBe('allow by trusted');
    expect(outcome(base, host('x.example'), { complete: false, fileTypes: ['exe'] })).toBe('block by no-exe');
    const zip = attrs({ response: [['Content-Type', 'application/zip']] });
    expect(outcome(base, zip, { complete: false, fileTypes: ['zip'] })).toBe('scan by deep');
    expect(outcome(base, host('x.example'), { complete: false, fileTypes: ['pdf'] })).toBe('scan by (service)');
  });
});

describe('evaluatePolicy: finality', () => {
  it('without hash lists or sizes, a rule chosen early is final', () => {
    expect(outcome(base, host('trusted.example'))).toBe('allow by trusted');
  });

  it('with hash lists, nothing but a deny by host or URL is final before the end', () => {
    const config = { ...base, lists: { deny_sha256: file(BAD), deny_hosts: file('evil.example'), allow_hosts: file('partner.example') } };
    expect(outcome(config, host('trusted.example'))).toBe('allow by trusted (provisional)');
    expect(outcome(config, host('partner.example'))).toBe('allow by allow_hosts (provisional)');
    expect(outcome(config, host('evil.example'))).toBe('block by deny_hosts');
    expect(outcome(config, host('trusted.example'), { complete: true, size: 1, fileTypes: ['unknown'], sha256: GOOD })).toBe('allow by trusted');
  });

  it('an allow by host is final when only an allow hash list exists (allow beats rules anyway)', () => {
    const config = { ...base, lists: { allow_sha256: file(GOOD), allow_hosts: file('partner.example') } };
    expect(outcome(config, host('partner.example'))).toBe('allow by allow_hosts');
  });

  it('a choice resting on a declared size waits for the real one', () => {
    const config: ServicePolicyConfig = { backends: ['b'], on_error: 'block', rules: [{ name: 'small', match: { max_size: 100 }, action: 'allow' }] };
    const declared = attrs({ response: [['Content-Length', '50']] });
    expect(outcome(config, declared)).toBe('allow by small (provisional)');
    expect(outcome(config, declared, { complete: true, size: 50 })).toBe('allow by small');
    // The declared size lied: the real one decides.
    expect(outcome(config, declared, { complete: true, size: 5000 })).toBe('scan by (service)');
  });

  it('waits for the first bytes when a file_type rule comes first', () => {
    expect(outcome(base, host('x.example'))).toBe('pending');
  });
});

describe('compileServicePolicy', () => {
  it('scan rules default to the service backends and on_error; allow/block rules scan nothing', () => {
    const policy = compileServicePolicy({
      backends: ['builtin'],
      on_error: 'allow',
      rules: [
        { name: 'a', action: 'scan' },
        { name: 'b', action: 'scan', backends: ['clamd'], on_error: { timeout: 'allow' } },
        { name: 'c', action: 'allow' },
      ],
    });
    expect(policy.rules.map((r) => [r.name, r.action, r.backends, r.onError])).toEqual([
      ['a', 'scan', ['builtin'], 'allow'],
      ['b', 'scan', ['clamd'], { timeout: 'allow' }],
      ['c', 'allow', [], 'allow'],
      [null, 'scan', ['builtin'], 'allow'],
    ]);
    expect(policy.usesFileType).toBe(false);
  });
});
