/**
 * The access line as pino writes `logger.info({ access: record }, 'access')`, built as one string
 * by template literals that read each field by name.
 *
 * Why a string: the line is ≈ 450 bytes, and JavaScript that wrote it byte by byte into the log
 * block (Session 11's encoder, to allocate nothing) was the largest single item of a null-body
 * REQMOD's JavaScript: 1.8 µs per request in a profile of the server. Concatenation makes cons
 * strings (≈ 1.8 KB of short-lived allocations per line) that the destination's one native UTF-8
 * write flattens and copies: 0.8 µs in the same profile (BENCHMARKS.md, Session 12). JSON.stringify
 * of the record alone costs ≈ 1.4 µs: the gain is in V8 seeing fixed property loads (a loop over the
 * keys is as slow).
 *
 * Strings are checked for what JSON would escape; printable ASCII without `"` and `\` (nearly all:
 * ids, addresses, names, URLs) is its own JSON body. Fields that are ours by construction skip the
 * check (`plain` below). test/observability/access-json.test.ts holds the output against
 * JSON.stringify and against pino's own line. Rare, nested fields (decoding, multipart, parts,
 * batch, committed, error_decisions) go through JSON.stringify.
 *
 * Fields taken from the ICAP and HTTP heads (url, x_client_ip, x_client_username, partial, and
 * user when it is the header as sent) are latin1 byte strings, as the codec decodes heads: those
 * that are not plain ASCII are written as their UTF-8 text, or with %XX for bytes that are not
 * valid UTF-8 (protocol/head-text.ts says why and how). Plain ASCII ones take the same path as before.
 */
import type { AccessRecord } from './access-log.js';
import { headText, userIsRawHeader } from '../../protocol/index.js';

/** Printable ASCII without `"` and `\`: such a string is its own JSON body. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** A JSON string, as JSON.stringify writes it. */
function str(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** A JSON string of a byte string from the heads: its text, not each byte as a character. */
function headStr(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(headText(s));
}

/** `user`: bytes when it is the user header as sent, text when base64 decoding made it (not decoded twice). */
function userStr(user: string, rawHeader: string | undefined): string {
  if (PLAIN.test(user)) return `"${user}"`;
  return JSON.stringify(userIsRawHeader(user, rawHeader) ? headText(user) : user);
}

/** As JSON.stringify writes a number: non-finite ones as null. */
function num(n: number | null): number | string {
  return n !== null && Number.isFinite(n) ? n : 'null';
}

function strings(list: readonly string[]): string {
  if (list.length === 0) return '[]';
  let out = `[${str(list[0]!)}`;
  for (let i = 1; i < list.length; i++) out += `,${str(list[i]!)}`;
  return `${out}]`;
}

function scans(list: AccessRecord['scans']): string {
  if (list.length === 0) return '[]';
  let out = '[';
  for (let i = 0; i < list.length; i++) {
    const s = list[i]!;
    // transaction.ts builds each entry in this order.
    out += `${i === 0 ? '' : ','}{"backend":${str(s.backend)},"outcome":${str(s.outcome)},"ms":${num(s.ms)}`;
    if (s.endpoint !== undefined) out += `,"endpoint":${str(s.endpoint)}`;
    if (s.part !== undefined) out += `,"part":${str(s.part)}`;
    out += '}';
  }
  return `${out}]`;
}

/**
 * The record as JSON, in JSON.stringify's field order for the record transaction.ts builds.
 * Quoted without a check (the check was 3.6 % of a REQMOD's CPU once): the transaction id (hex and
 * base36), the client (a socket's address and port), the method the decoder accepted, and the
 * verdict, reason and action words of transaction.ts.
 */
export function accessRecordJson(r: AccessRecord): string {
  let out =
    `{"transaction_id":"${r.transaction_id}","client":"${r.client}","method":"${r.method}"` +
    `,"service":${str(r.service)},"icap_status":${num(r.icap_status)},"http_status":${num(r.http_status)}` +
    `,"bytes_in":${num(r.bytes_in)},"bytes_out":${num(r.bytes_out)},"preview":${num(r.preview)}` +
    `,"body_bytes":${num(r.body_bytes)},"verdict":"${r.verdict}","threats":${strings(r.threats)}` +
    `,"scan_errors":${strings(r.scan_errors)},"reason":"${r.reason}","duration_ms":${num(r.duration_ms)}`;
  if (r.url !== undefined) out += `,"url":${headStr(r.url)}`;
  if (r.partial !== undefined) out += `,"partial":${headStr(r.partial)}`;
  if (r.x_client_ip !== undefined) out += `,"x_client_ip":${headStr(r.x_client_ip)}`;
  if (r.x_client_username !== undefined) out += `,"x_client_username":${headStr(r.x_client_username)}`;
  out += `,"scans":${scans(r.scans)}`;
  if (r.cache !== undefined) out += `,"cache":"${r.cache}"`;
  if (r.decoding !== undefined) out += `,"decoding":${JSON.stringify(r.decoding)}`;
  if (r.multipart !== undefined) out += `,"multipart":${JSON.stringify(r.multipart)}`;
  if (r.parts !== undefined) out += `,"parts":${JSON.stringify(r.parts)}`;
  if (r.batch !== undefined) out += `,"batch":${JSON.stringify(r.batch)}`;
  if (r.user !== undefined) out += `,"user":${userStr(r.user, r.x_client_username)}`;
  if (r.rule !== undefined) out += `,"rule":${str(r.rule)}`;
  if (r.action !== undefined) out += `,"action":"${r.action}"`;
  if (r.list !== undefined) out += `,"list":${str(r.list)}`;
  if (r.list_entry !== undefined) out += `,"list_entry":${str(r.list_entry)}`;
  if (r.error_decisions !== undefined) out += `,"error_decisions":${JSON.stringify(r.error_decisions)}`;
  if (r.committed !== undefined) out += `,"committed":${JSON.stringify(r.committed)}`;
  return `${out}}`;
}

/** The whole line. `time` and `chindings` are pino's own JSON text (`,"time":"…"`, `,"pid":…,"hostname":…`). */
export function accessLineText(level: number, time: string, chindings: string, record: AccessRecord): string {
  return `{"level":${level}${time}${chindings},"access":${accessRecordJson(record)},"msg":"access"}\n`;
}
