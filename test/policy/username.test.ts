import { describe, expect, it } from 'vitest';
import { decodeUsername, userCandidates } from '../../src/policy/index.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
/** `text` as its UTF-8 bytes in a latin1 string, as the codec decodes a header value. */
const utf8Bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

describe('decodeUsername (Squid icap_client_username_encode)', () => {
  const rows: [label: string, raw: string, expected: string][] = [
    ['plain name', 'alice', 'alice'],
    ['base64 of a name', b64('alice'), 'alice'],
    ['base64 of DOMAIN\\user', b64('CORP\\bob'), 'CORP\\bob'],
    ['base64 of an e-mail address', b64('carol@example.com'), 'carol@example.com'],
    ['base64 of UTF-8', b64('zoë'), 'zoë'],
    ['surrounding blanks are trimmed', `  ${b64('dave')} `, 'dave'],
    ['surrounding tabs are trimmed (OWS is SP and HTAB)', `\t${b64('dave')}\t `, 'dave'],
    // à is C3 A0 in UTF-8: read as latin1, its last byte is U+00A0, which trim() would cut.
    ['a raw UTF-8 name ending in 0xA0 keeps that byte', ` ${utf8Bytes('voilà')}\t`, utf8Bytes('voilà')],
    ['a leading byte 0xA0 is not whitespace either', '\xa0bob', '\xa0bob'],
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

  it('gives both forms as NFC text: raw UTF-8 bytes decoded, not-UTF-8 bytes as %XX, decoded names as they are', () => {
    expect(userCandidates(utf8Bytes('josé'))).toEqual(['josé']);
    expect(userCandidates('jos\xe9')).toEqual(['jos%E9']); // latin1 é: what the access log shows
    expect(userCandidates(utf8Bytes('jose\u0301'))).toEqual(['josé']); // decomposed é → NFC
    expect(userCandidates(b64('josé'))).toEqual(['josé', b64('josé')]); // decoded `é` is U+00E9, not a byte
  });

  it('trims only SP and HTAB around the raw form, so a name ending in byte 0xA0 stays whole', () => {
    const name = utf8Bytes('voilà');
    // As text (a cut 0xA0 would leave `voil%C3`).
    expect(userCandidates(` ${name} `)).toEqual(['voilà']);
    expect(userCandidates(`\t${b64('voilà')}`)).toEqual(['voilà', b64('voilà')]);
  });
});
