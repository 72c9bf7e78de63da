/**
 * The access line encoded straight into the log destination's block: the bytes of the line
 * writeAccessLog built as a string before (access-json.ts and pino's prefix), with no string made.
 *
 * Why: built as a string, the line was ≈ 60 concatenations (each a 32-byte cons string) and then
 * a flat copy for the UTF-8 encoder: ≈ 2.2 KB of the ≈ 9 KB a null-body REQMOD allocated. Every
 * allocation brings the next scavenge closer, and a scavenge stalls every connection in flight,
 * which is what a p99 at 16 connections feels (BENCHMARKS.md, Session 11).
 *
 * Strings that are printable ASCII without `"` and `\` (nearly all: ids, addresses, names, URLs)
 * are copied byte by byte; any other string is written as JSON.stringify writes it, in UTF-8, as
 * the string line was. test/observability/access-json.test.ts holds both forms side by side.
 */
import type { AccessRecord } from './access-log.js';

// The encoder's state during one encodeAccessLine (or asText) call: module variables, not an object per line.
let out: Buffer = Buffer.alloc(0);
let at = 0;
let limit = 0;
let overflow = false;

/** Reserves `bytes` at `at`; false (and the line marked as not fitting) when the space is short. */
function room(bytes: number): boolean {
  if (at + bytes <= limit) return true;
  overflow = true;
  return false;
}

/** Any string, in UTF-8 (at most 3 bytes per UTF-16 unit). */
function utf8(s: string): void {
  if (room(s.length * 3)) at += out.write(s, at);
}

/** Text that needs no JSON escaping: ours by construction (keys, numbers, ids, words) or already JSON. */
function raw(s: string): void {
  const n = s.length;
  if (!room(n)) return;
  const start = at;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) {
      at = start;
      utf8(s);
      return;
    }
    out[at++] = c;
  }
}

/** A JSON string, as JSON.stringify writes it. */
function str(s: string): void {
  const n = s.length;
  if (!room(n + 2)) return;
  const start = at;
  out[at++] = 0x22;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    // Outside printable ASCII, or `"` or `\`: JSON.stringify decides the escaping.
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
      at = start;
      utf8(JSON.stringify(s));
      return;
    }
    out[at++] = c;
  }
  out[at++] = 0x22;
}

/** As JSON.stringify writes a number: non-finite ones as null; small whole ones digit by digit. */
function num(n: number | null): void {
  if (n === null || !Number.isFinite(n)) {
    raw('null');
    return;
  }
  if (!Number.isInteger(n) || n < 0 || n >= 1e15) {
    raw(`${n}`);
    return;
  }
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  if (!room(digits)) return;
  let rest = n;
  for (let i = at + digits - 1; i >= at; i--) {
    out[i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  at += digits;
}

function strings(list: readonly string[]): void {
  raw('[');
  for (let i = 0; i < list.length; i++) {
    if (i > 0) raw(',');
    str(list[i]!);
  }
  raw(']');
}

function scans(list: AccessRecord['scans']): void {
  raw('[');
  for (let i = 0; i < list.length; i++) {
    const s = list[i]!;
    // transaction.ts builds each entry in this order.
    raw(i === 0 ? '{"backend":' : ',{"backend":');
    str(s.backend);
    raw(',"outcome":');
    str(s.outcome);
    raw(',"ms":');
    num(s.ms);
    if (s.endpoint !== undefined) {
      raw(',"endpoint":');
      str(s.endpoint);
    }
    if (s.part !== undefined) {
      raw(',"part":');
      str(s.part);
    }
    raw('}');
  }
  raw(']');
}

/** `,"key":"value"` for an optional string field. */
function optionalStr(key: string, value: string | undefined): void {
  if (value === undefined) return;
  raw(key);
  str(value);
}

/** `,"key":<JSON>` for a rare, nested field: through JSON.stringify. */
function optionalJson(key: string, value: object | undefined): void {
  if (value === undefined) return;
  raw(key);
  utf8(JSON.stringify(value));
}

function begin(buf: Buffer, start: number, end: number): void {
  out = buf;
  at = start;
  limit = end;
  overflow = false;
}

/** Where the bytes end, or -1 when they did not fit. The buffer is not kept past the call. */
function finish(): number {
  out = EMPTY;
  return overflow ? -1 : at;
}

const EMPTY = Buffer.alloc(0);

/** The record as JSON, in JSON.stringify's field order for the record transaction.ts builds. */
function writeRecord(r: AccessRecord): void {
  raw('{"transaction_id":');
  str(r.transaction_id);
  raw(',"client":');
  str(r.client);
  raw(',"method":');
  str(r.method);
  raw(',"service":');
  str(r.service);
  raw(',"icap_status":');
  num(r.icap_status);
  raw(',"http_status":');
  num(r.http_status);
  raw(',"bytes_in":');
  num(r.bytes_in);
  raw(',"bytes_out":');
  num(r.bytes_out);
  raw(',"preview":');
  num(r.preview);
  raw(',"body_bytes":');
  num(r.body_bytes);
  raw(',"verdict":');
  str(r.verdict);
  raw(',"threats":');
  strings(r.threats);
  raw(',"scan_errors":');
  strings(r.scan_errors);
  raw(',"reason":');
  str(r.reason);
  raw(',"duration_ms":');
  num(r.duration_ms);
  optionalStr(',"url":', r.url);
  optionalStr(',"x_client_ip":', r.x_client_ip);
  optionalStr(',"x_client_username":', r.x_client_username);
  raw(',"scans":');
  scans(r.scans);
  optionalStr(',"cache":', r.cache);
  optionalJson(',"decoding":', r.decoding);
  optionalJson(',"multipart":', r.multipart);
  optionalJson(',"parts":', r.parts);
  optionalJson(',"batch":', r.batch);
  optionalStr(',"user":', r.user);
  optionalStr(',"rule":', r.rule);
  optionalStr(',"action":', r.action);
  optionalStr(',"list":', r.list);
  optionalStr(',"list_entry":', r.list_entry);
  optionalJson(',"error_decisions":', r.error_decisions);
  optionalJson(',"committed":', r.committed);
  raw('}');
}

/** `time` and `chindings` are pino's own JSON text (`,"time":"…"`, `,"pid":…,"hostname":…`). */
function writeLine(level: number, time: string, chindings: string, record: AccessRecord): void {
  raw('{"level":');
  num(level);
  raw(time);
  raw(chindings);
  raw(',"access":');
  writeRecord(record);
  raw(',"msg":"access"}\n');
}

/**
 * The whole line, as pino writes `logger.info({ access: record }, 'access')`, into `buf` from `start`
 * using no byte at or past `end`. Returns where the line ends, or -1 when it did not fit (bytes may
 * have been written between start and end; the caller does not count them).
 */
export function encodeAccessLine(
  buf: Buffer,
  start: number,
  end: number,
  level: number,
  time: string,
  chindings: string,
  record: AccessRecord,
): number {
  begin(buf, start, end);
  writeLine(level, time, chindings, record);
  return finish();
}

/** Scratch space for lines made as strings (a destination that takes strings only, tests): grown as needed. */
let scratch = Buffer.allocUnsafe(16 * 1024);

function asText(write: () => void): string {
  for (;;) {
    begin(scratch, 0, scratch.length);
    write();
    const end = finish();
    if (end >= 0) return scratch.toString('utf8', 0, end);
    scratch = Buffer.allocUnsafe(scratch.length * 2);
  }
}

/** The line as a string, byte for byte what encodeAccessLine writes. */
export function accessLineText(level: number, time: string, chindings: string, record: AccessRecord): string {
  return asText(() => writeLine(level, time, chindings, record));
}

/** The record alone as JSON: what JSON.stringify(record) writes. */
export function accessRecordJson(record: AccessRecord): string {
  return asText(() => writeRecord(record));
}
