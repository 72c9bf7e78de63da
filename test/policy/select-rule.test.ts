import { describe, expect, it } from 'vitest';
import { compileServicePolicy, selectRule, type BodyFacts, type RuleConfig } from '../../src/policy/index.js';
import { attrs } from './helpers.js';

const rule = (name: string, match: RuleConfig['match'], action: RuleConfig['action'] = 'scan'): RuleConfig => ({ name, match, action });
const names = (rules: RuleConfig[], a = attrs(), facts: BodyFacts = { complete: true, size: 10, fileTypes: ['unknown'] }) => {
  const policy = compileServicePolicy({ backends: ['builtin'], on_error: 'block', rules });
  const s = selectRule(policy.rules, a, facts);
  return s.kind === 'matched' ? (s.rule.name ?? '(service)') : s.kind;
};

describe('selectRule', () => {
  it('the first matching rule wins, even when a later one matches too', () => {
    const rules = [rule('a', { host: ['other.example'] }), rule('b', { host: ['example.com'] }), rule('c', {})];
    expect(names(rules)).toBe('b');
  });

  it('falls through to the service implicit rule when nothing matches', () => {
    expect(names([rule('a', { method: ['POST'] })])).toBe('(service)');
  });

  it('waits while an earlier rule depends on a fact not known yet', () => {
    const rules = [rule('exe', { file_type: ['exe'] }, 'block'), rule('all', {}, 'allow')];
    expect(names(rules, attrs(), { complete: false })).toBe('pending');
    expect(names(rules, attrs(), { complete: false, fileTypes: ['exe'] })).toBe('exe');
    expect(names(rules, attrs(), { complete: false, fileTypes: ['pdf'] })).toBe('all');
  });

  it('does not wait for a later rule once an earlier one matched', () => {
    const rules = [rule('host', { host: ['example.com'] }), rule('exe', { file_type: ['exe'] })];
    expect(names(rules, attrs(), { complete: false })).toBe('host');
  });

  it('does not wait when the unknown rule is already false on something else', () => {
    const rules = [rule('exe-elsewhere', { host: ['other.example'], file_type: ['exe'] }), rule('next', {})];
    expect(names(rules, attrs(), { complete: false })).toBe('next');
  });

  it('marks a choice made on a declared size', () => {
    const policy = compileServicePolicy({ backends: ['b'], on_error: 'block', rules: [rule('small', { max_size: 100 }, 'allow')] });
    const declared = attrs({ response: [['Content-Length', '50']] });
    expect(selectRule(policy.rules, declared, { complete: false })).toMatchObject({ kind: 'matched', onDeclaredSize: true });
    expect(selectRule(policy.rules, declared, { complete: true, size: 50 })).toMatchObject({ kind: 'matched', onDeclaredSize: false });
    // A later rule chosen after a size rule said no also rests on the declared size.
    expect(selectRule(policy.rules, attrs({ response: [['Content-Length', '500']] }), { complete: false })).toMatchObject({
      kind: 'matched',
      rule: { name: null },
      onDeclaredSize: true,
    });
  });

  it('says none for an empty list (the service policy always ends with its implicit rule)', () => {
    expect(selectRule([], attrs(), { complete: true })).toEqual({ kind: 'none' });
  });
});
