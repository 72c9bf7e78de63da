/**
 * The access line in Squid's access.log layout (logging.access_log_format: squid,
 * src/observability/access-line-squid.ts): ten fields that a Squid log parser splits on spaces,
 * whatever the client put in the URL, the user name or a threat name.
 */
import { describe, expect, it } from 'vitest';
import { accessLineSquid } from '../../src/observability/access-line-squid.js';
import { writeAccessLog, type AccessRecord } from '../../src/observability/access-log.js';
import { decodeUsername } from '../../src/policy/username.js';
import { captureLogLines } from '../helpers/log-lines.js';

/** `text` sent as UTF-8, as the codec gives it: a latin1 byte string, one character per byte. */
const utf8Bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

const NOW = Date.UTC(2026, 10, 22, 9, 32, 7, 474); // 1795339927474

const INFECTED: AccessRecord = {
  transaction_id: 'f67db2c8-2',
  client: '192.0.2.7',
  method: 'RESPMOD',
  service: 'respmod',
  icap_status: 200,
  http_status: 403,
  bytes_in: 365,
  bytes_out: 1962,
  preview: 68,
  body_bytes: 68,
  verdict: 'infected',
  threats: ['EICAR-Test-File'],
  scan_errors: [],
  reason: 'infected',
  duration_ms: 44.9,
  url: 'http://example.com/eicar.com',
  x_client_username: 'YWxpY2U=',
  user: 'alice',
  scans: [{ backend: 'builtin', outcome: 'infected', ms: 1 }],
};

const OPTIONS: AccessRecord = {
  transaction_id: 'f67db2c8-1',
  client: '::1',
  method: 'OPTIONS',
  service: 'reqmod',
  icap_status: 200,
  http_status: null,
  bytes_in: 0,
  bytes_out: 240,
  preview: null,
  body_bytes: 0,
  verdict: 'none',
  threats: [],
  scan_errors: [],
  reason: 'options',
  duration_ms: 0.04,
  scans: [],
};

/** Squid's parsers split on runs of spaces (%6tr pads with them). */
const fields = (line: string): string[] => line.replace(/\n$/, '').split(/ +/);

describe('accessLineSquid', () => {
  it('writes the ten fields of Squid\'s layout, one line', () => {
    expect(accessLineSquid(NOW, INFECTED)).toBe(
      '1795339927.474     45 192.0.2.7 INFECTED/200 1962 RESPMOD http://example.com/eicar.com alice respmod/f67db2c8-2 EICAR-Test-File\n',
    );
    expect(accessLineSquid(NOW, OPTIONS)).toBe('1795339927.474      0 ::1 NONE/200 240 OPTIONS - - reqmod/f67db2c8-1 -\n');
  });

  it('pads the milliseconds of the time to three digits', () => {
    for (const [ms, text] of [
      [0, '000'],
      [7, '007'],
      [42, '042'],
      [999, '999'],
    ] as const) {
      expect(fields(accessLineSquid(1795339927000 + ms, OPTIONS))[0]).toBe(`1795339927.${text}`);
    }
  });

  it('writes the duration in whole milliseconds, right-aligned in six columns, wider when longer', () => {
    for (const [ms, text] of [
      [0, '     0'],
      [0.49, '     0'],
      [0.5, '     1'],
      [12.3, '    12'],
      [999_999, '999999'],
      [1_234_567.8, '1234568'],
      [Number.NaN, '     0'],
    ] as const) {
      expect(accessLineSquid(NOW, { ...OPTIONS, duration_ms: ms }).slice(15, 15 + text.length), String(ms)).toBe(text);
    }
  });

  it('names the verdict as a Squid result code', () => {
    for (const [verdict, code] of [
      ['clean', 'CLEAN'],
      ['error-allowed', 'ERROR_ALLOWED'],
      ['not-scanned', 'NOT_SCANNED'],
      ['deny-listed', 'DENY_LISTED'],
    ] as const) {
      expect(fields(accessLineSquid(NOW, { ...INFECTED, verdict, icap_status: 204 }))[3]).toBe(`${code}/204`);
    }
  });

  it('writes the ICAP status in three digits (%03>Hs): an error answer as sent, nothing sent as 000', () => {
    const aborted = { ...INFECTED, verdict: 'aborted', reason: 'body-timeout', http_status: null, threats: [] };
    expect(fields(accessLineSquid(NOW, { ...aborted, icap_status: 408 }))[3]).toBe('ABORTED/408');
    expect(fields(accessLineSquid(NOW, { ...aborted, reason: 'client-disconnected', icap_status: 0, bytes_out: 0 }))[3]).toBe('ABORTED/000');
  });

  it('takes the user as sent when it could not be decoded, and joins several threats with commas', () => {
    const { user: _, ...undecoded } = INFECTED;
    const line = fields(accessLineSquid(NOW, { ...undecoded, x_client_username: 'bob', threats: ['A', 'B.C'] }));
    expect(line[7]).toBe('bob');
    expect(line[9]).toBe('A,B.C');
  });

  it('%-encodes spaces, control characters and non-ASCII text from the outside, so a line always has ten fields', () => {
    const awkward = ['a b', 'tab\tnew\nline\r', '\u0000\u001f\u007f', 'naïve — 日本', '😀', '\ud800', 'x,y'];
    for (const s of awkward) {
      const line = accessLineSquid(NOW, { ...INFECTED, url: s, user: s, service: s, threats: [s, s] });
      expect(line.endsWith('\n') && line.indexOf('\n') === line.length - 1, JSON.stringify(s)).toBe(true);
      const f = fields(line);
      expect(f, JSON.stringify(s)).toHaveLength(10);
      // Decoding gives back the text (a lone surrogate as U+FFFD, as UTF-8 has no other way to write it).
      const text = Buffer.from(s, 'utf8').toString('utf8');
      expect(decodeURIComponent(f[6]!)).toBe(text);
      expect(decodeURIComponent(f[7]!)).toBe(text);
      expect(decodeURIComponent(f[8]!.slice(0, f[8]!.lastIndexOf('/')))).toBe(text);
    }
    expect(fields(accessLineSquid(NOW, { ...INFECTED, url: 'http://h/a b', threats: ['Win.Test A', 'B'] }))).toEqual([
      '1795339927.474',
      '45',
      '192.0.2.7',
      'INFECTED/200',
      '1962',
      'RESPMOD',
      'http://h/a%20b',
      'alice',
      'respmod/f67db2c8-2',
      'Win.Test%20A,B',
    ]);
  });

  it('%-encodes the bytes the client sent in the URL and user name (latin1 byte strings), each once', () => {
    const raw = utf8Bytes('jörg müller');
    const f = fields(accessLineSquid(NOW, { ...INFECTED, url: utf8Bytes('http://example.com/café'), x_client_username: raw, user: decodeUsername(raw) }));
    expect([f[6], f[7]]).toEqual(['http://example.com/caf%C3%A9', 'j%C3%B6rg%20m%C3%BCller']);
    // No user decoded (an empty name): the header as sent, its bytes.
    const { user: _, ...undecoded } = INFECTED;
    expect(fields(accessLineSquid(NOW, { ...undecoded, x_client_username: raw }))[7]).toBe('j%C3%B6rg%20m%C3%BCller');
  });

  it('%-encodes bytes that are not valid UTF-8 as they are, one %XX each', () => {
    for (const [bytes, written] of [
      ['caf\xe9', 'caf%E9'],
      ['\xff\xfe', '%FF%FE'],
      [`x\xc3 ${utf8Bytes('é')}`, 'x%C3%20%C3%A9'],
    ]) {
      const f = fields(accessLineSquid(NOW, { ...INFECTED, url: bytes, x_client_username: bytes, user: bytes }));
      expect([f[6], f[7]], JSON.stringify(bytes)).toEqual([written, written]);
    }
  });

  it('writes a user name base64 decoding made as its UTF-8 bytes, not reading the text as bytes again', () => {
    const encoded = Buffer.from('jörg müller', 'utf8').toString('base64');
    expect(fields(accessLineSquid(NOW, { ...INFECTED, x_client_username: encoded, user: decodeUsername(encoded) }))[7]).toBe('j%C3%B6rg%20m%C3%BCller');
    const raw = utf8Bytes('jörg');
    expect(fields(accessLineSquid(NOW, { ...INFECTED, x_client_username: raw, user: decodeUsername(raw) }))[7]).toBe('j%C3%B6rg');
  });

  it('leaves % and other printable ASCII as it is: URLs arrive %-encoded already', () => {
    const url = 'http://example.com/a%20b?q="1"&x=\\y#[z]';
    expect(fields(accessLineSquid(NOW, { ...INFECTED, url }))[6]).toBe(url);
  });

  it('writes - for an empty URL or user', () => {
    const f = fields(accessLineSquid(NOW, { ...INFECTED, url: '', user: '' }));
    expect([f[6], f[7]]).toEqual(['-', '-']);
  });
});

describe('writeAccessLog, format squid', () => {
  it('writes the text line, with the time it is written, into the logger\'s destination', () => {
    const { logger, lines } = captureLogLines();
    const before = Date.now();
    writeAccessLog(logger.child({ pid: 42 }), INFECTED, true, 'squid');
    const after = Date.now();
    expect(lines).toHaveLength(1);
    const f = fields(lines[0]!);
    expect(f.slice(1)).toEqual(fields(accessLineSquid(NOW, INFECTED)).slice(1));
    const ms = Number(f[0]) * 1000;
    expect(ms).toBeGreaterThanOrEqual(before - 1);
    expect(ms).toBeLessThanOrEqual(after + 1);
  });

  it('writes nothing when the access log is off, and writes whatever the level (as Squid\'s access.log)', () => {
    const off = captureLogLines();
    writeAccessLog(off.logger, INFECTED, false, 'squid');
    expect(off.lines).toEqual([]);
    const quiet = captureLogLines('warn');
    writeAccessLog(quiet.logger, INFECTED, true, 'squid');
    expect(quiet.lines).toHaveLength(1);
  });
});
