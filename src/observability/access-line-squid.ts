/**
 * The access line in the layout of Squid's native access.log (`logging.access_log_format: squid`),
 * for operators whose tools already read Squid's or c-icap's text logs. Ten fields separated by
 * single spaces, `-` for an empty one:
 *
 *   1763812327.474     45 192.0.2.7 INFECTED/200 1962 RESPMOD http://example.com/eicar.com alice respmod/f67db2c8-2 EICAR-Test-File
 *
 * Squid's `squid` logformat is `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`; each of
 * our fields stands where its Squid counterpart does, so a parser of Squid's lines splits ours:
 *
 *   %ts.%03tu  when the line is written, Unix seconds and milliseconds
 *   %6tr       duration_ms, whole milliseconds, right-aligned in 6 columns
 *   %>a        client (the ICAP client's address)
 *   %Ss/%03>Hs VERDICT/icap_status: the verdict in capitals, `-` as `_` (CLEAN, ERROR_ALLOWED, ...)
 *   %<st       bytes_out
 *   %rm        method (REQMOD, RESPMOD, OPTIONS)
 *   %ru        url, the encapsulated HTTP request's URL
 *   %[un       user (decoded), else x_client_username as sent
 *   %Sh/%<a    service/transaction_id
 *   %mt        threats, joined by commas
 *
 * The JSON line (access-line.ts, the default) carries every field; this one carries what a Squid or
 * c-icap log does, in a quarter of the bytes, and costs the event loop 1–2 µs less per request
 * (BENCHMARKS.md, Session 24). A field from the outside (url, user, threats, the service a client
 * named) that holds a space, a control character or non-ASCII text has those bytes %-encoded (%20,
 * %0A, %C3%A9), as Squid's `[` and `#` encodings do, so a line always splits into the same ten
 * fields; `%` itself is left as it is, since URLs arrive %-encoded already.
 *
 * Those bytes are the bytes the client sent: the url and a user name as sent are latin1 byte
 * strings (the codec decodes heads one character per byte), so each character is one byte and
 * `café` sent as UTF-8 is written `caf%C3%A9`, bytes that are not UTF-8 as they are (`caf%E9`).
 * Text (a user name base64 decoding made, a threat or service name) is written as its UTF-8 bytes.
 */
import type { AccessRecord } from './access-log.js';
import { headBytes, userIsRawHeader } from '../../protocol/index.js';

/** Printable ASCII without the space: such a field needs no encoding. */
const SAFE = /^[\x21-\x7e]+$/;

/**
 * The field as written: `-` when empty, its unsafe bytes %-encoded. `fromHead`: `value` is a byte
 * string from the heads (one character per byte, protocol/head-text.ts), not text to encode as UTF-8.
 */
function field(value: string | undefined, fromHead = false): string {
  if (value === undefined || value === '') return '-';
  return SAFE.test(value) ? value : percentEncodeUnsafe(fromHead ? headBytes(value) : Buffer.from(value, 'utf8'));
}

function percentEncodeUnsafe(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    out += byte > 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `%${byte < 0x10 ? '0' : ''}${byte.toString(16).toUpperCase()}`;
  }
  return out;
}

/** `%6tr`: whole milliseconds, right-aligned in six columns (wider when longer, as printf does). */
function elapsed(ms: number): string {
  const whole = Number.isFinite(ms) ? `${Math.round(ms)}` : '0';
  return whole.length >= 6 ? whole : '      '.slice(whole.length) + whole;
}

/** `%ts.%03tu`. */
function unixSecondsAndMillis(nowMs: number): string {
  const millis = nowMs % 1000;
  return `${(nowMs - millis) / 1000}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}`;
}

/** Result codes already made: verdicts are a dozen words, and making one was 2 % of a REQMOD's JavaScript. */
const RESULT_CODES = new Map<string, string>();

/** The verdict as a Squid result code: `error-allowed` → `ERROR_ALLOWED`. */
function resultCode(verdict: string): string {
  let code = RESULT_CODES.get(verdict);
  if (code === undefined) {
    code = verdict.toUpperCase().replace(/-/g, '_');
    if (RESULT_CODES.size < 64) RESULT_CODES.set(verdict, code);
  }
  return code;
}

function threatList(threats: readonly string[]): string {
  if (threats.length === 0) return '-';
  if (threats.length === 1) return field(threats[0]);
  return threats.map((t) => field(t)).join(',');
}

/** `%[un`: the user name base64 decoding made (text), else the user header as sent (bytes). */
function userField(r: AccessRecord): string {
  const user = r.user;
  if (user === undefined) return field(r.x_client_username, true);
  if (SAFE.test(user)) return user; // the same either way: skip telling the two apart
  return field(user, userIsRawHeader(user, r.x_client_username));
}

/** The whole line, newline included. `nowMs`: the time it is written, from Date.now(). */
export function accessLineSquid(nowMs: number, r: AccessRecord): string {
  return (
    `${unixSecondsAndMillis(nowMs)} ${elapsed(r.duration_ms)} ${r.client} ${resultCode(r.verdict)}/${r.icap_status >= 100 ? r.icap_status : String(r.icap_status).padStart(3, '0')}` +
    ` ${r.bytes_out} ${r.method} ${field(r.url, true)} ${userField(r)}` +
    ` ${field(r.service)}/${r.transaction_id} ${threatList(r.threats)}\n`
  );
}
