/**
 * The access line built by hand (access-line.ts, writeAccessLog) against what JSON.stringify and
 * pino write for the same record: operators' parsers and dashboards read these lines.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accessRecordJson } from '../../src/observability/access-line.js';
import { writeAccessLog, type AccessRecord } from '../../src/observability/access-log.js';
import { batchedStdout } from '../../src/observability/log-destination.js';
import { createLogger } from '../../src/observability/logger.js';
import { decodeUsername } from '../../src/policy/username.js';
import { captureLogLines } from '../helpers/log-lines.js';

/** A record with every field, in the order src/server/transaction.ts builds it (Required: a new field must be added here). */
const FULL: Required<AccessRecord> = {
  transaction_id: 'k3x9-1a',
  client: '::1:50412',
  method: 'RESPMOD',
  service: 'respmod',
  icap_status: 200,
  http_status: 403,
  bytes_in: 1_048_900,
  bytes_out: 812,
  preview: 1024,
  body_bytes: 1_048_576,
  verdict: 'infected',
  threats: ['Eicar-Test-Signature', 'Win.Test "quoted"'],
  scan_errors: ['metadefender:timeout'],
  reason: 'infected',
  duration_ms: 12.3,
  url: 'http://example.com/a b?q="1"&x=\\y',
  partial: 'bytes 4034-8067/8068',
  x_client_ip: '192.0.2.7',
  x_client_username: 'YWxpY2U=',
  scans: [
    { backend: 'clamav', outcome: 'infected', ms: 7, endpoint: '/run/clamd.sock', part: 'file:a.exe' },
    { backend: 'metadefender', outcome: 'error:timeout', ms: 30000 },
  ],
  cache: 'miss',
  decoding: { codings: ['gzip'], outcome: 'decoded', decoded_bytes: 2_000_000 },
  multipart: { outcome: 'split', parts: 2 },
  parts: [{ label: 'file:a.exe', file_name: 'a.exe', media_type: 'application/octet-stream', bytes: 68, outcome: 'infected', threats: ['Eicar'], cached: true }],
  batch: { backend: 'metadefender', id: 'b-1', endpoint: 'https://core:8008', signed: true, verified: null, detail: 'x' },
  user: 'alice',
  rule: 'uploads',
  action: 'scan',
  list: 'deny_sha256',
  list_entry: 'ab12',
  error_decisions: [{ backend: 'metadefender', kind: 'timeout', decision: 'allow' }],
  committed: { kicks: 3, released_bytes: 65536 },
};

const MINIMAL: AccessRecord = {
  transaction_id: 'k3x9-2',
  client: '127.0.0.1:40000',
  method: 'OPTIONS',
  service: 'reqmod',
  icap_status: 200,
  http_status: null,
  bytes_in: 0,
  bytes_out: 0,
  preview: null,
  body_bytes: 0,
  verdict: 'none',
  threats: [],
  scan_errors: [],
  reason: 'options',
  duration_ms: 0,
  scans: [],
};

/** `text` sent as UTF-8, as the codec gives it: a latin1 byte string, one character per byte. */
const utf8Bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

// Escapes, control characters, non-ASCII, a lone surrogate (JSON.stringify escapes it), DEL.
const AWKWARD = ['', 'a"b', 'back\\slash', 'tab\tnew\nline\r', '\u0000\u001f', 'naïve — 日本', '😀', '\ud800', '\u007f', '</script>'];

describe('accessRecordJson', () => {
  it('writes exactly what JSON.stringify writes, for a record with every field and one with none optional', () => {
    expect(accessRecordJson(FULL)).toBe(JSON.stringify(FULL));
    expect(accessRecordJson(MINIMAL)).toBe(JSON.stringify(MINIMAL));
  });

  it('escapes every string as JSON.stringify does', () => {
    for (const s of AWKWARD) {
      const { scans: _, ...head } = MINIMAL;
      const record: AccessRecord = { ...head, threats: [s, s], url: s, scans: [{ backend: s, outcome: s, ms: 1, endpoint: s, part: s }], user: s };
      expect(accessRecordJson(record), JSON.stringify(s)).toBe(JSON.stringify(record));
    }
  });

  it('writes a non-finite number as null, as JSON.stringify does', () => {
    const record: AccessRecord = { ...MINIMAL, duration_ms: Number.NaN, bytes_in: Number.POSITIVE_INFINITY };
    expect(accessRecordJson(record)).toBe(JSON.stringify(record));
  });

  it('writes numbers as JSON.stringify does', () => {
    for (const n of [0, -0, 7, 9, 10, 99, 100, 65_536, 1_048_576, 999_999_999_999_999, 1e15, 2 ** 53, 1e21, 0.1, 12.3, 1.5e-7, -3, -0.5]) {
      const record: AccessRecord = { ...MINIMAL, bytes_in: n, duration_ms: n, http_status: n };
      expect(accessRecordJson(record), String(n)).toBe(JSON.stringify(record));
    }
  });

  it('writes fields from the heads (latin1 byte strings) as the UTF-8 text that was sent, not encoded twice', () => {
    const raw = utf8Bytes('jörg müller');
    const record: AccessRecord = {
      ...MINIMAL,
      url: utf8Bytes('http://example.com/café?q=日本'),
      partial: utf8Bytes('bytes 0-1/2 «x»'),
      x_client_ip: utf8Bytes('ip\u00a0é'),
      x_client_username: raw,
      user: decodeUsername(raw), // not base64: the header as sent, trimmed (transaction.ts)
    };
    const parsed = JSON.parse(accessRecordJson(record)) as AccessRecord;
    expect(parsed).toMatchObject({
      url: 'http://example.com/café?q=日本',
      partial: 'bytes 0-1/2 «x»',
      x_client_ip: 'ip\u00a0é',
      x_client_username: 'jörg müller',
      user: 'jörg müller',
    });
    expect(accessRecordJson(record)).toContain('"url":"http://example.com/café?q=日本"');
  });

  it('writes head bytes that are not valid UTF-8 with %XX for each byte from 0x80 up, ASCII as it is', () => {
    for (const [bytes, written] of [
      ['caf\xe9', 'caf%E9'], // latin1 é
      ['\xff\xfe a"b', '%FF%FE a"b'],
      [`${utf8Bytes('café')}\xff`, 'caf%C3%A9%FF'], // one bad byte: the whole value as bytes
      ['x\xc3', 'x%C3'], // a cut sequence
      ['\xc0\xaf', '%C0%AF'], // an overlong "/"
      ['\xed\xa0\x80', '%ED%A0%80'], // a UTF-16 surrogate
      ['\x80', '%80'], // a lone continuation byte
    ]) {
      const record: AccessRecord = { ...MINIMAL, url: bytes, x_client_username: bytes, user: bytes };
      expect(JSON.parse(accessRecordJson(record)), JSON.stringify(bytes)).toMatchObject({ url: written, x_client_username: written, user: written });
    }
    // A byte order mark is text like any other: kept, not dropped.
    expect(JSON.parse(accessRecordJson({ ...MINIMAL, url: utf8Bytes('\ufeffa') })).url).toBe('\ufeffa');
  });

  it('writes a user name base64 decoding made as the text it is (not read as bytes again), the header as sent as bytes', () => {
    const encoded = Buffer.from('jörg müller', 'utf8').toString('base64');
    const decoded: AccessRecord = { ...MINIMAL, x_client_username: encoded, user: decodeUsername(encoded) };
    expect(JSON.parse(accessRecordJson(decoded))).toMatchObject({ x_client_username: encoded, user: 'jörg müller' });
    const latin1Base64 = Buffer.from('jörg', 'latin1').toString('base64'); // not UTF-8 inside: stays as sent
    expect(JSON.parse(accessRecordJson({ ...MINIMAL, x_client_username: latin1Base64, user: decodeUsername(latin1Base64) })).user).toBe(latin1Base64);
    const raw = ` ${utf8Bytes('jörg')} `; // trimmed by decodeUsername, still the header's bytes
    expect(JSON.parse(accessRecordJson({ ...MINIMAL, x_client_username: raw, user: decodeUsername(raw) }))).toMatchObject({
      x_client_username: ' jörg ',
      user: 'jörg',
    });
  });

  it('leaves out fields that are undefined, as JSON.stringify does', () => {
    const record: AccessRecord = { ...MINIMAL, url: undefined, cache: undefined, rule: undefined };
    expect(accessRecordJson(record)).toBe(JSON.stringify(record));
  });
});

const withoutTime = (line: string): string => line.replace(/,"time":"[^"]+"/, ',"time":"T"');

describe('writeAccessLog', () => {
  it('writes the line pino writes for { access: record }, for the root logger and a child', () => {
    for (const make of [(l: ReturnType<typeof createLogger>) => l, (l: ReturnType<typeof createLogger>) => l.child({ pid: 42, role: 'worker "1"' })]) {
      const { logger, lines } = captureLogLines();
      const log = make(logger);
      for (const record of [FULL, MINIMAL]) {
        log.info({ access: record }, 'access');
        writeAccessLog(log, record, true);
      }
      expect(lines).toHaveLength(4);
      expect(withoutTime(lines[1]!)).toBe(withoutTime(lines[0]!));
      expect(withoutTime(lines[3]!)).toBe(withoutTime(lines[2]!));
      expect(JSON.parse(lines[1]!)).toMatchObject({ level: 30, service: 'icap-bridge', msg: 'access', access: FULL });
    }
  });

  it('encodes into a log block byte for byte what pino writes, across block boundaries and for a line longer than a block', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-access-'));
    const path = join(dir, 'out.log');
    const fd = openSync(path, 'w');
    try {
      // 4 KiB blocks: FULL is ~1.1 KB, so lines keep crossing into a fresh block; the long URL fits none.
      const destination = batchedStdout({ minLength: 4096, fileBlockBytes: 4096, pipeBlockBytes: 4096, fd });
      const logger = createLogger({ level: 'info', destination }).child({ pid: 42, role: 'naïve "1"' });
      // Fields in the order transaction.ts sets them (url before scans), which pino keeps.
      const { scans, ...head } = MINIMAL;
      const withUrl = (url: string): AccessRecord => ({ ...head, url, scans, user: url });
      const longUrl = `http://example.com/${'é'.repeat(3000)}`;
      const records = [...Array.from({ length: 20 }, (_, i) => ({ ...FULL, bytes_in: i })), withUrl(longUrl), MINIMAL, ...AWKWARD.map(withUrl)];
      for (const record of records) {
        logger.info({ access: record }, 'access'); // pino: a string through write()
        // ours: access-line.ts's string, into the same destination. The long URL as the codec gives
        // it (UTF-8 bytes, one character each), which ours writes as the text pino was given.
        writeAccessLog(logger, record.url === longUrl ? { ...record, url: utf8Bytes(longUrl) } : record, true);
      }
      await destination.end();
      const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
      expect(lines).toHaveLength(records.length * 2);
      for (let i = 0; i < records.length; i++) {
        expect(withoutTime(lines[2 * i + 1]!), `record ${i}`).toBe(withoutTime(lines[2 * i]!));
        expect(JSON.parse(lines[2 * i + 1]!).access).toEqual(JSON.parse(JSON.stringify(records[i])));
      }
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes nothing when the access log is off, and writes whatever the level (as Squid\'s access.log)', () => {
    const off = captureLogLines();
    writeAccessLog(off.logger, MINIMAL, false);
    expect(off.lines).toEqual([]);
    for (const level of ['warn', 'silent']) {
      const quiet = captureLogLines(level);
      writeAccessLog(quiet.logger, MINIMAL, true);
      expect(quiet.lines.map((l) => JSON.parse(l) as { level: number; msg: string })).toMatchObject([{ level: 30, msg: 'access' }]);
    }
  });
});
