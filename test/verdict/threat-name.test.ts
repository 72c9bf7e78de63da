import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_THREAT_NAME_LENGTH, sanitizeHeaderText, sanitizeThreatName, UNKNOWN_THREAT } from '../../src/verdict/threat-name.js';

describe('sanitizeThreatName', () => {
  const cases: [label: string, raw: string, expected: string][] = [
    ['plain name', 'Eicar-Test-Signature', 'Eicar-Test-Signature'],
    ['spaces kept', 'EICAR Test String', 'EICAR Test String'],
    ['CR LF injection', 'Eicar\r\nX-Evil: 1', 'EicarX-Evil: 1'],
    ['lone LF', 'Win.Trojan\nAgent', 'Win.TrojanAgent'],
    ['lone CR', 'Win.Trojan\rAgent', 'Win.TrojanAgent'],
    ['NUL', 'Eicar\u0000Sig', 'EicarSig'],
    ['TAB is a control character', 'a\tb', 'ab'],
    ['DEL', 'Eicar\u007fSig', 'EicarSig'],
    ['C1 NEL', 'Eicar\u0085Sig', 'EicarSig'],
    ['C1 range ends', '\u0080a\u009fb', 'ab'],
    ['semicolon ends threat text (§B)', 'Foo; Resolution=0', 'Foo Resolution=0'],
    ['double quote', '"Quoted.Threat"', 'Quoted.Threat'],
    ['whitespace runs collapse', 'a    b  \u00a0 c', 'a b c'],
    ['trimmed', '   Trojan.Gen   ', 'Trojan.Gen'],
    ['space left by a removed control collapses', 'a \r\n b', 'a b'],
    ['unicode letter → ?', 'Trojan.Über', 'Trojan.?ber'],
    ['CJK → ?', '木马', '??'],
    ['emoji (surrogate pair) → one ?', 'x😈y', 'x?y'],
    ['lone surrogate → ?', 'x\ud800y', 'x?y'],
    ['line separator U+2028 is whitespace', 'a\u2028b', 'a b'],
    ['empty', '', UNKNOWN_THREAT],
    ['only whitespace', ' \t \r\n ', UNKNOWN_THREAT],
    ['only controls and delimiters', '\u0000;"\u007f', UNKNOWN_THREAT],
    ['overlong capped', 'A'.repeat(500), 'A'.repeat(MAX_THREAT_NAME_LENGTH)],
    ['cap counts code points after replacement', '😈'.repeat(300), '?'.repeat(MAX_THREAT_NAME_LENGTH)],
    ['cap does not leave a trailing space', `${'A'.repeat(199)} B`, 'A'.repeat(199)],
  ];

  it.each(cases)('%s', (_label, raw, expected) => {
    expect(sanitizeThreatName(raw)).toBe(expected);
  });

  it('property: any input gives 1–200 printable ASCII chars, no ; or ", single spaces, trimmed', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (raw) => {
        const out = sanitizeThreatName(raw);
        expect(out).toMatch(/^[\x20-\x7e]{1,200}$/);
        expect(out).not.toMatch(/[;"]|\s{2}|^\s|\s$/);
      }),
    );
  });

  it('sanitizeHeaderText may return empty (callers pick their own fallback)', () => {
    expect(sanitizeHeaderText('\r\n')).toBe('');
  });
});
