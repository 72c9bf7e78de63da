/**
 * The access record as JSON, written field by field. JSON.stringify of a record costs ≈ 1.4 µs alone
 * and was 10.5 % of a REQMOD's CPU in a profile once log lines went to blocks (BENCHMARKS.md,
 * Session 6); straight-line code reading each field by name costs ≈ 0.5 µs. (A loop over the keys, by for..in or by a key table, is as slow
 * as JSON.stringify: the gain is in V8 seeing fixed property loads.)
 *
 * The output parses back to the record (test/observability/access-json.test.ts, with a record that
 * must have every field: a field added to AccessRecord fails the type check until it is written
 * here too). Rare, nested fields (decoding, multipart, parts, batch, committed, error_decisions)
 * go through JSON.stringify.
 */
import type { AccessRecord } from './access-log.js';

/** Printable ASCII without `"` and `\`: such a string is its own JSON body. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function str(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/**
 * Quoted without a check: only for fields whose values are ours and plain by construction (an id of
 * hex and base36, a socket's IP address, the method the decoder accepted, and the verdict, reason
 * and action words of transaction.ts). The regex test of str() was 3.6 % of a REQMOD's CPU.
 */
function plain(s: string): string {
  return `"${s}"`;
}

/** As JSON.stringify writes a number: non-finite ones as null. */
function num(n: number | null): string {
  return n !== null && Number.isFinite(n) ? `${n}` : 'null';
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

export function accessRecordJson(r: AccessRecord): string {
  let out =
    `{"transaction_id":${plain(r.transaction_id)},"client":${plain(r.client)},"method":${plain(r.method)}` +
    `,"service":${str(r.service)},"icap_status":${num(r.icap_status)},"http_status":${num(r.http_status)}` +
    `,"bytes_in":${num(r.bytes_in)},"bytes_out":${num(r.bytes_out)},"preview":${num(r.preview)}` +
    `,"body_bytes":${num(r.body_bytes)},"verdict":${plain(r.verdict)},"threats":${strings(r.threats)}` +
    `,"scan_errors":${strings(r.scan_errors)},"reason":${plain(r.reason)},"duration_ms":${num(r.duration_ms)}`;
  if (r.url !== undefined) out += `,"url":${str(r.url)}`;
  if (r.x_client_ip !== undefined) out += `,"x_client_ip":${str(r.x_client_ip)}`;
  if (r.x_client_username !== undefined) out += `,"x_client_username":${str(r.x_client_username)}`;
  out += `,"scans":${scans(r.scans)}`;
  if (r.cache !== undefined) out += `,"cache":${str(r.cache)}`;
  if (r.decoding !== undefined) out += `,"decoding":${JSON.stringify(r.decoding)}`;
  if (r.multipart !== undefined) out += `,"multipart":${JSON.stringify(r.multipart)}`;
  if (r.parts !== undefined) out += `,"parts":${JSON.stringify(r.parts)}`;
  if (r.batch !== undefined) out += `,"batch":${JSON.stringify(r.batch)}`;
  if (r.user !== undefined) out += `,"user":${str(r.user)}`;
  if (r.rule !== undefined) out += `,"rule":${str(r.rule)}`;
  if (r.action !== undefined) out += `,"action":${plain(r.action)}`;
  if (r.list !== undefined) out += `,"list":${str(r.list)}`;
  if (r.list_entry !== undefined) out += `,"list_entry":${str(r.list_entry)}`;
  if (r.error_decisions !== undefined) out += `,"error_decisions":${JSON.stringify(r.error_decisions)}`;
  if (r.committed !== undefined) out += `,"committed":${JSON.stringify(r.committed)}`;
  return `${out}}`;
}
