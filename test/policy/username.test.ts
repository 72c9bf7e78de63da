import { describe, expect, it } from 'vitest';
import { decodeUsername, userCandidates } from '../../src/policy/index.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('decodeUsername (Squid icap_client_username_encode)', () => {
  const rows: [label: string, raw: string, expected: string][] = [
    ['plain name', 'alice', 'alice'],
    ['base64 of a name', b64('alice'), 'alice'],
    ['base64 of DOMAIN\\user', b64('CORP\\bob'), 'CORP\\bob'],
    ['base64 of an e-mail address', b64('carol@example.com'), 'carol@example.com'],
    ['base64 of UTF-8', b64('zoë'), 'zoë'],
    ['surrounding blanks are trimmed', `  ${b64('dave')} `, 'dave'],
    // Valid base64 by chance, but the bytes are not UTF-8 text: kept as sent.
    ['plain name that is valid base64', 'abcd1234', 'abcd1234'],
    ['4-letter plain name', 'root', 'root'],
    ['base64 of control characters', b64('a\u0001b'), b64('a\u0001b')],
    ['base64 of blanks', b64('   '), b64('   ')],
    ['not canonical base64 (missing padding)', 'YWxpY2U', 'YWxpY2U'],
    ['empty', '', ''],
  ];
  it.each(rows)('%s', (_label, raw, expected) => {
    expect(decodeUsername(raw)).toBe(expected);
  });
});

describe('userCandidates', () => {
  it('offers the decoded and the raw form, so a rule written either way matches', () => {
    expect(userCandidates(b64('alice'))).toEqual(['alice', b64('alice')]);
    expect(userCandidates('alice')).toEqual(['alice']);
    expect(userCandidates(undefined)).toEqual([]);
  });
});
