/**
 * Text from the ICAP and HTTP heads, for output written as UTF-8 (access lines, the block page).
 *
 * The codec decodes heads as latin1, one JavaScript character per byte, so the bytes survive
 * untouched (STYLE.md "Keep the original bytes"). Such a string is not text: a URL sent as the
 * UTF-8 bytes of `café` arrives as `cafÃ©`, and writing that string as UTF-8 encodes every byte a
 * second time (`cafÃ©` in JSON, `caf%C3%83%C2%A9` %-encoded). Strings taken from the heads
 * (`url`, `x_client_username`, `x_client_ip`, `partial` of an access record, and `user` when it is
 * the header value as sent) go through here before they are written.
 *
 * A string holding a character above U+00FF cannot have come from the codec: it is text already
 * (a test's record, a value some caller decoded) and is left as it is, written as UTF-8.
 */

/** Any byte at or above 0x80: plain ASCII is the same as bytes and as text. */
const NON_ASCII = /[^\x00-\x7f]/;

/** True when every character is ASCII (below 0x80): then bytes, latin1 and UTF-8 text agree. */
export function isAscii(s: string): boolean {
  return !NON_ASCII.test(s);
}
/** A character no latin1 byte string holds. */
const ABOVE_LATIN1 = /[^\x00-\xff]/;
// fatal: invalid UTF-8 (stray continuation bytes, overlong forms, surrogates, cut sequences) throws
// instead of becoming U+FFFD. ignoreBOM: a leading EF BB BF is kept, not silently dropped.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Whether `s` is to be read as bytes (one per character), not as text. */
function isByteString(s: string): boolean {
  return !ABOVE_LATIN1.test(s);
}

/**
 * The text of a byte string from the heads.
 *
 * Chosen representation: bytes that are valid UTF-8 (nearly every client sends UTF-8) are that
 * text, so `café` reads as `café`. Bytes that are not valid UTF-8 as a whole keep their ASCII and
 * have every byte from 0x80 up written as `%XX` (upper-case hex), so the raw bytes stay visible and
 * recoverable and nothing turns into U+FFFD or a guessed charset: `caf\xE9` (latin1 é) reads as
 * `caf%E9`. This is the form URLs use for bytes and the form of the Squid layout. A `%` already in
 * the value is left as it is (URLs arrive %-encoded), so `%E9` in such a value may also have been
 * sent as those three characters; a value that reads as text with no `%XX` above `%7F` was valid UTF-8.
 */
export function headText(bytes: string): string {
  if (!NON_ASCII.test(bytes) || ABOVE_LATIN1.test(bytes)) return bytes;
  const raw = Buffer.from(bytes, 'latin1');
  try {
    return UTF8.decode(raw);
  } catch {
    let out = '';
    for (const byte of raw) out += byte < 0x80 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase()}`;
    return out;
  }
}

/** The bytes `s` stands for: its own bytes if it is a byte string from the heads, else its UTF-8. */
export function headBytes(s: string): Buffer {
  return Buffer.from(s, isByteString(s) ? 'latin1' : 'utf8');
}

/**
 * Whether the record's `user` is the user header as sent (bytes) rather than the text base64
 * decoding gave (policy/username.ts returns the trimmed header value when it decodes nothing).
 * A decoded name never equals its own base64, so the comparison tells the two apart.
 */
export function userIsRawHeader(user: string, rawHeader: string | undefined): boolean {
  return rawHeader !== undefined && user === trimOws(rawHeader);
}

// Optional whitespace around a field value is SP and HTAB only (RFC 9110 §5.5 OWS).
const OWS_AT_EDGES = /^[ \t]+|[ \t]+$/g;

/**
 * A head value without surrounding OWS. Not String.prototype.trim: head values are latin1-decoded
 * bytes, and trim() also cuts U+00A0 and other Unicode spaces, so it would cut a byte 0xA0 that
 * ends a UTF-8 character (`à` is C3 A0).
 */
export function trimOws(value: string): string {
  return value.replace(OWS_AT_EDGES, '');
}
