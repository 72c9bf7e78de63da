/**
 * The one representation `user`, `headers` and `content_type` compare: Unicode text in NFC.
 *
 * Head values arrive as latin1 byte strings (one character per byte, protocol/head-text.ts), while
 * patterns come from the YAML as text: `josé` in a rule is 4 characters, the header's UTF-8 bytes
 * of it are 5, and lower-casing those bytes folds the lead byte 0xC3 into 0xE3 instead of `É` into
 * `é`. So values are decoded the way the access log writes them (headText: valid UTF-8 is its
 * text, anything else keeps its ASCII and shows each byte from 0x80 up as `%XX`), so a pattern
 * copied from the log matches, and both sides are put in NFC (Unicode canonical equivalence: a
 * decomposed `é` from one client is the precomposed `é` of the YAML; RFC 8265 §3.3.2 step 4 does
 * the same for user names). ASCII, nearly every value, costs one regex test and is returned as is.
 */
import { headText, isAscii } from '../../protocol/index.js';


/** A head value (latin1 byte string) as text to compare. */
export function headMatchText(bytes: string): string {
  return isAscii(bytes) ? bytes : headText(bytes).normalize('NFC');
}

/** Text that is already text (a pattern, a base64-decoded user name), in the same form. */
export function matchText(text: string): string {
  return isAscii(text) ? text : text.normalize('NFC');
}
