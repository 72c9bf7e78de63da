import { describe, expect, it } from 'vitest';
import type { BackendResult, ScanErrorKind } from '../../src/backends/backend.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { decide, notScanned, verdictLabel, type Decision, type FailurePolicy } from '../../src/verdict/index.js';
import { byList, byRule, failureAction, planResponse, type FailureAction, type PlanContext } from '../../src/verdict/index.js';

const clean = (backend: string): BackendResult => ({ outcome: 'clean', backend, durationMs: 1 });
const infected = (backend: string, ...threats: string[]): BackendResult => ({
  outcome: 'infected',
  backend,
  durationMs: 1,
  threats,
});
const failed = (backend: string, kind: ScanErrorKind, message = `${kind} happened`): BackendResult => ({
  outcome: 'error',
  backend,
  durationMs: 1,
  kind,
  message,
});

describe('decide', () => {
  const rows: [label: string, results: BackendResult[], policy: FailurePolicy, expected: Decision][] = [
    ['one clean', [clean('builtin')], 'block', { action: 'allow', reason: 'clean' }],
    ['all clean, policy allow', [clean('builtin'), clean('clamd')], 'allow', { action: 'allow', reason: 'clean' }],
    [
      'infected',
      [infected('builtin', 'Eicar-Test-Signature')],
      'allow',
      { action: 'block', reason: 'infected', threats: [{ name: 'Eicar-Test-Signature', backend: 'builtin' }], errors: [] },
    ],
    [
      'infected beats clean',
      [clean('builtin'), infected('clamd', 'Win.Test.EICAR_HDB-1')],
      'allow',
      { action: 'block', reason: 'infected', threats: [{ name: 'Win.Test.EICAR_HDB-1', backend: 'clamd' }], errors: [] },
    ],
    [
      'error, policy block',
      [failed('clamd', 'timeout')],
      'block',
      { action: 'block', reason: 'error-policy', errors: [{ backend: 'clamd', kind: 'timeout', message: 'timeout happened' }] },
    ],
    [
      'error, policy allow',
      [failed('clamd', 'unreachable')],
      'allow',
      {
        action: 'allow',
        reason: 'error-policy',
        errors: [{ backend: 'clamd', kind: 'unreachable', message: 'unreachable happened' }],
      },
    ],
    [
      'clean + error, policy allow: still marked error-policy',
      [clean('builtin'), failed('md', 'too-large')],
      'allow',
      { action: 'allow', reason: 'error-policy', errors: [{ backend: 'md', kind: 'too-large', message: 'too-large happened' }] },
    ],
    [
      'clean + error, policy block',
      [clean('builtin'), failed('md', 'encrypted')],
      'block',
      { action: 'block', reason: 'error-policy', errors: [{ backend: 'md', kind: 'encrypted', message: 'encrypted happened' }] },
    ],
    [
      'mixed infected + error, policy allow: infected wins, errors listed',
      [failed('md', 'overloaded'), infected('builtin', 'Eicar')],
      'allow',
      {
        action: 'block',
        reason: 'infected',
        threats: [{ name: 'Eicar', backend: 'builtin' }],
        errors: [{ backend: 'md', kind: 'overloaded', message: 'overloaded happened' }],
      },
    ],
    [
      'mixed infected + error, policy block',
      [infected('builtin', 'Eicar'), failed('md', 'unsupported')],
      'block',
      {
        action: 'block',
        reason: 'infected',
        threats: [{ name: 'Eicar', backend: 'builtin' }],
        errors: [{ backend: 'md', kind: 'unsupported', message: 'unsupported happened' }],
      },
    ],
    [
      'multiple threats across backends, deduplicated by name+backend',
      [infected('builtin', 'Eicar', 'Eicar', 'Other'), infected('clamd', 'Eicar'), clean('md')],
      'allow',
      {
        action: 'block',
        reason: 'infected',
        threats: [
          { name: 'Eicar', backend: 'builtin' },
          { name: 'Other', backend: 'builtin' },
          { name: 'Eicar', backend: 'clamd' },
        ],
        errors: [],
      },
    ],
    [
      'names are sanitized before dedup',
      [infected('clamd', 'Eicar\r\n', 'Eicar;')],
      'allow',
      { action: 'block', reason: 'infected', threats: [{ name: 'Eicar', backend: 'clamd' }], errors: [] },
    ],
    [
      'infected without a name still blocks',
      [infected('upstream')],
      'allow',
      { action: 'block', reason: 'infected', threats: [{ name: 'Unknown-Threat', backend: 'upstream' }], errors: [] },
    ],
    [
      'zero results, policy allow: never allowed unscanned',
      [],
      'allow',
      { action: 'block', reason: 'error-policy', errors: [{ backend: 'none', kind: 'backend-error', message: 'no backend ran' }] },
    ],
    [
      'zero results, policy block',
      [],
      'block',
      { action: 'block', reason: 'error-policy', errors: [{ backend: 'none', kind: 'backend-error', message: 'no backend ran' }] },
    ],
  ];

  it.each(rows)('%s', (_label, results, policy, expected) => {
    expect(decide(results, policy)).toEqual(expected);
  });

  it('every error kind goes to the policy', () => {
    const kinds: ScanErrorKind[] = ['timeout', 'unreachable', 'overloaded', 'too-large', 'encrypted', 'unsupported', 'backend-error'];
    for (const kind of kinds) {
      expect(decide([failed('b', kind)], 'allow')).toMatchObject({ action: 'allow', reason: 'error-policy' });
      expect(decide([failed('b', kind)], 'block')).toMatchObject({ action: 'block', reason: 'error-policy' });
    }
  });
});

/**
 * A service scanning with several engines in parallel (clamd + MetaDefender + builtin): the merge
 * order is infected > error under "block" > sanitized > error under "allow" > clean, whatever
 * order the engines finished in.
 */
describe('decide: multi-engine merges', () => {
  const sanitized = (backend: string, ...notes: string[]): BackendResult => ({
    outcome: 'sanitized',
    backend,
    durationMs: 1,
    body: spooledBodyFromBuffer(Buffer.from(`copy from ${backend}`)),
    threats: notes,
    dispose: async () => {},
  });
  const error = (backend: string, kind: ScanErrorKind) => ({ backend, kind, message: `${kind} happened` });

  const rows: [label: string, results: BackendResult[], policy: FailurePolicy, expected: Partial<Decision> & Pick<Decision, 'action' | 'reason'>][] = [
    ['three engines clean', [clean('clamav'), clean('core'), clean('builtin')], 'block', { action: 'allow', reason: 'clean' }],
    [
      'infected + clean + timeout, policy block: infected, the timeout listed',
      [infected('clamav', 'IcapBridge.Test.Eicar.UNOFFICIAL'), clean('builtin'), failed('core', 'timeout')],
      'block',
      { action: 'block', reason: 'infected', threats: [{ name: 'IcapBridge.Test.Eicar.UNOFFICIAL', backend: 'clamav' }], errors: [error('core', 'timeout')] },
    ],
    [
      'clean + timeout + infected (infected last), policy allow: still infected',
      [clean('builtin'), failed('core', 'timeout'), infected('clamav', 'X')],
      'allow',
      { action: 'block', reason: 'infected', threats: [{ name: 'X', backend: 'clamav' }], errors: [error('core', 'timeout')] },
    ],
    [
      'every engine infected: each engine\'s names, in result order; one name from two engines kept per engine',
      [infected('clamav', 'IcapBridge.Test.Eicar.UNOFFICIAL'), infected('core', 'Win.Test.EICAR_HDB-1', 'EICAR-Test-File'), infected('builtin', 'EICAR-Test-File')],
      'block',
      {
        action: 'block',
        reason: 'infected',
        threats: [
          { name: 'IcapBridge.Test.Eicar.UNOFFICIAL', backend: 'clamav' },
          { name: 'Win.Test.EICAR_HDB-1', backend: 'core' },
          { name: 'EICAR-Test-File', backend: 'core' },
          { name: 'EICAR-Test-File', backend: 'builtin' },
        ],
        errors: [],
      },
    ],
    [
      'error + error, policy block: both errors, in result order',
      [failed('core', 'timeout'), failed('clamav', 'unreachable'), clean('builtin')],
      'block',
      { action: 'block', reason: 'error-policy', errors: [error('core', 'timeout'), error('clamav', 'unreachable')] },
    ],
    [
      'error + error, policy allow: allowed, marked, both errors',
      [failed('core', 'overloaded'), clean('builtin'), failed('clamav', 'too-large')],
      'allow',
      { action: 'allow', reason: 'error-policy', errors: [error('core', 'overloaded'), error('clamav', 'too-large')] },
    ],
    [
      'every engine failed, policy allow: allowed only because the policy says so',
      [failed('core', 'timeout'), failed('clamav', 'unreachable'), failed('builtin', 'backend-error')],
      'allow',
      { action: 'allow', reason: 'error-policy', errors: [error('core', 'timeout'), error('clamav', 'unreachable'), error('builtin', 'backend-error')] },
    ],
    [
      'sanitized + infected + clean: infected wins over the sanitized copy',
      [sanitized('core', 'Macro removed'), infected('clamav', 'X'), clean('builtin')],
      'allow',
      { action: 'block', reason: 'infected', threats: [{ name: 'X', backend: 'clamav' }], errors: [] },
    ],
    [
      'sanitized + error + clean, policy block: error blocks before the copy',
      [sanitized('core'), failed('clamav', 'unreachable'), clean('builtin')],
      'block',
      { action: 'block', reason: 'error-policy', errors: [error('clamav', 'unreachable')] },
    ],
    [
      'sanitized + error + clean, policy allow: the copy goes out, the error listed',
      [clean('builtin'), failed('clamav', 'timeout'), sanitized('core')],
      'allow',
      { action: 'sanitize', reason: 'sanitized', errors: [error('clamav', 'timeout')] },
    ],
  ];

  it.each(rows)('%s', (_label, results, policy, expected) => {
    expect(decide(results, policy)).toMatchObject(expected);
  });

  it('two sanitized copies: the first result\'s copy is sent', () => {
    const d = decide([clean('builtin'), sanitized('core-a', 'a'), sanitized('core-b', 'b')], 'block');
    expect(d).toMatchObject({ action: 'sanitize', replacement: { backend: 'core-a', notes: ['a'] }, errors: [] });
  });

  it('the action does not depend on the order the engines finished in', () => {
    const results = [infected('clamav', 'X'), failed('core', 'timeout'), sanitized('md2'), clean('builtin')];
    const orders = [results, [...results].reverse(), [results[2]!, results[0]!, results[3]!, results[1]!]];
    for (const policy of ['block', 'allow'] as const) {
      for (const order of orders) expect(decide(order, policy)).toMatchObject({ action: 'block', reason: 'infected' });
    }
    const noInfection = results.slice(1);
    for (const order of [noInfection, [...noInfection].reverse()]) {
      expect(decide(order, 'block')).toMatchObject({ action: 'block', reason: 'error-policy' });
      expect(decide(order, 'allow')).toMatchObject({ action: 'sanitize', reason: 'sanitized' });
    }
  });
});

describe('verdictLabel', () => {
  const rows: [Decision, string][] = [
    [{ action: 'allow', reason: 'clean' }, 'clean'],
    [notScanned('empty body'), 'not-scanned'],
    [{ action: 'allow', reason: 'error-policy', errors: [] }, 'error-allowed'],
    [{ action: 'block', reason: 'error-policy', errors: [] }, 'error-blocked'],
    [{ action: 'block', reason: 'infected', threats: [], errors: [] }, 'infected'],
  ];
  it.each(rows)('%o → %s', (d, label) => {
    expect(verdictLabel(d)).toBe(label);
  });
});

/**
 * The failure matrix (a rule's `on_error` as a per-kind map): every non-verdict outcome maps to
 * allow or block on its own, a kind left out blocks, and each error says what it decided.
 */
describe('decide: failure matrix', () => {
  const KINDS: ScanErrorKind[] = ['timeout', 'unreachable', 'overloaded', 'too-large', 'encrypted', 'unsupported', 'backend-error'];
  const rows = KINDS.flatMap((kind) => (['allow', 'block'] as const).map((action) => [kind, action] as [ScanErrorKind, FailureAction]));

  it.each(rows)('%s → %s', (kind, action) => {
    // The kind under test gets `action`; every other kind the opposite, so a wrong lookup shows.
    const other: FailureAction = action === 'allow' ? 'block' : 'allow';
    const matrix = Object.fromEntries(KINDS.map((k) => [k, k === kind ? action : other]));
    const d = decide([clean('builtin'), failed('clamd', kind)], matrix);
    expect(d).toEqual({ action, reason: 'error-policy', errors: [{ backend: 'clamd', kind, message: `${kind} happened`, decision: action }] });
    const plan = planResponse(d, planContext);
    expect(decisionOf(plan.icapHeaders)).toBe(`${action}; reason=error-policy; errors=clamd:${kind}:${action}`);
  });

  it.each(KINDS)('%s left out of the map blocks', (kind) => {
    const allowOthers = Object.fromEntries(KINDS.filter((k) => k !== kind).map((k) => [k, 'allow']));
    expect(decide([failed('clamd', kind)], allowOthers)).toMatchObject({ action: 'block', errors: [{ kind, decision: 'block' }] });
    expect(failureAction({}, kind)).toBe('block');
  });

  it('one blocked kind among allowed ones blocks, and each error keeps its own decision', () => {
    const d = decide([failed('clamd', 'timeout'), failed('md', 'encrypted')], { timeout: 'allow' });
    expect(d).toMatchObject({
      action: 'block',
      reason: 'error-policy',
      errors: [
        { backend: 'clamd', kind: 'timeout', decision: 'allow' },
        { backend: 'md', kind: 'encrypted', decision: 'block' },
      ],
    });
    expect(decisionOf(planResponse(d, planContext).icapHeaders)).toBe('block; reason=error-policy; errors=clamd:timeout:allow,md:encrypted:block');
  });

  it('an infection still blocks when every error kind is allowed', () => {
    expect(decide([infected('a', 'X'), failed('b', 'timeout')], { timeout: 'allow' })).toMatchObject({ action: 'block', reason: 'infected' });
  });

  it('the one-word policy keeps the old shape (no per-error decision) and header form', () => {
    const d = decide([failed('clamd', 'timeout')], 'allow');
    expect(d).toEqual({ action: 'allow', reason: 'error-policy', errors: [{ backend: 'clamd', kind: 'timeout', message: 'timeout happened' }] });
    expect(decisionOf(planResponse(d, planContext).icapHeaders)).toBe('allow; reason=error-policy; errors=clamd:timeout');
  });

  it('the rule that chose the backends is named after the old parameters', () => {
    const d = decide([failed('clamd', 'timeout')], { timeout: 'allow' });
    expect(decisionOf(planResponse(d, { ...planContext, rule: 'uploads' }).icapHeaders)).toBe('allow; reason=error-policy; errors=clamd:timeout:allow; rule=uploads');
  });
});

describe('decisions without a scan (policy rules and lists)', () => {
  const rows: [label: string, decision: Decision, header: string, label2: string, kind: string][] = [
    ['rule allow', byRule('allow', 'updates'), 'allow; reason=rule; rule=updates', 'rule-allowed', 'no-content'],
    ['rule block', byRule('block', 'no-exe'), 'block; reason=rule; rule=no-exe', 'rule-blocked', 'block'],
    ['allow list', byList('allow', 'allow_hosts', 'intranet.example'), 'allow; reason=allow-list; list=allow_hosts', 'allow-listed', 'no-content'],
    ['deny list', byList('block', 'deny_sha256', 'ab'.repeat(32)), 'block; reason=deny-list; list=deny_sha256', 'deny-listed', 'block'],
  ];
  it.each(rows)('%s', (_label, decision, header, label, kind) => {
    const plan = planResponse(decision, planContext);
    expect(plan.kind).toBe(kind);
    expect(decisionOf(plan.icapHeaders)).toBe(header);
    expect(verdictLabel(decision)).toBe(label);
    if (plan.kind === 'block') {
      // A policy block is not a threat: no X-Infection-Found, but the page says why.
      expect(plan.icapHeaders.map(([n]) => n)).not.toContain('X-Infection-Found');
      expect(plan.httpBody.toString()).toContain(decision.reason === 'rule' ? 'blocked by policy rule no-exe' : 'on the deny list deny_sha256');
    }
  });
});

const planContext: PlanContext = {
  method: 'RESPMOD',
  may204: true,
  serviceAllows204: true,
  transactionId: 't-1',
  serviceName: 'respmod',
  url: 'http://example.com/x',
  blockPageTemplate: '<p>{{reason}}</p>',
};

function decisionOf(headers: readonly [string, string][]): string | undefined {
  return headers.find(([n]) => n === 'X-ICAP-Bridge-Decision')?.[1];
}
