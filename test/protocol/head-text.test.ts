/**
 * Head values are latin1-decoded bytes (protocol/head-text.ts): trimmed of OWS only, written once
 * as the UTF-8 text they are.
 */
import { describe, expect, it } from 'vitest';
import { headText, trimOws, userIsRawHeader } from '../../protocol/index.js';

/** A UTF-8 name as the head parser hands it over: each byte one latin1 character. */
const asHeadBytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

describe('head text', () => {
  it('trimOws cuts SP and HTAB only, never a byte 0xA0 that ends a UTF-8 character (à is C3 A0)', () => {
    expect(trimOws(' \tvoilà\t ')).toBe('voilà');
    const voila = asHeadBytes('voilà');
    expect(voila.endsWith('\u00a0')).toBe(true);
    expect(trimOws(` ${voila} `)).toBe(voila);
    expect(headText(trimOws(voila))).toBe('voilà');
  });

  it('userIsRawHeader recognizes a raw name that ends in byte 0xA0', () => {
    const voila = asHeadBytes('voilà');
    expect(userIsRawHeader(voila, ` ${voila}`)).toBe(true);
    expect(userIsRawHeader('decoded', voila)).toBe(false);
  });
});
