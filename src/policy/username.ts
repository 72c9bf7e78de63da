/**
 * The user name Squid sends in X-Client-Username (or X-Authenticated-User). With
 * `icap_client_username_encode on` Squid base64-encodes it, so a value that is canonical base64
 * of printable UTF-8 text is decoded. A plain name can look like base64 by chance ("abcd1234"
 * is valid base64), which is why rules match the raw value as well as the decoded one
 * (userCandidates), and the log keeps both.
 */

import { trimOws } from '../../protocol/index.js';
import { headMatchText, matchText } from './match-text.js';

// Canonical base64: whole quanta, padding only at the end.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// C0 and C1 controls, DEL: never part of a user name, and a sign the bytes were not text.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The decoded name, or `raw` (trimmed) when it is not base64 of printable text. */
export function decodeUsername(raw: string): string {
  const value = trimOws(raw);
  if (value === '' || !BASE64.test(value)) return value;
  let text: string;
  try {
    text = UTF8.decode(Buffer.from(value, 'base64'));
  } catch {
    return value; // not UTF-8: a plain name that happens to be valid base64
  }
  return text.trim() === '' || CONTROL.test(text) ? value : text;
}

/**
 * Every form a rule's `user` pattern may match: the raw header value and, if different, the
 * decoded one, both as text (match-text.ts). Only here is it known which is which: the raw value
 * is bytes, the decoded one text already, and `é` as text would read as a byte that is not UTF-8.
 */
export function userCandidates(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const plain = trimOws(raw);
  const decoded = decodeUsername(plain);
  return decoded === plain ? [headMatchText(plain)] : [matchText(decoded), headMatchText(plain)];
}
