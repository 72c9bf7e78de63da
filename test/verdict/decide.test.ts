import { describe, expect, it } from 'vitest';
import type { BackendResult, ScanErrorKind } from '../../src/backends/backend.js';
import { decide, notScanned, verdictLabel, type Decision, type FailurePolicy } from '../../src/verdict/index.js';

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
