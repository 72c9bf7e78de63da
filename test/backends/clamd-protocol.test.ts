/** The pure parts of the clamd adapter: reply parsing (split everywhere), framing, endpoints, endpoint choice, config. */
import { describe, expect, it } from 'vitest';
import { parseClamdEndpoint } from '../../src/backends/clamd/endpoint.js';
import {
  chunkHeader,
  frameChunks,
  MAX_REPLY_BYTES,
  parsePathScanReply,
  parseScanReply,
  parseVersionReply,
  ReplyReader,
  scanPathCommand,
  type ScanReply,
} from '../../src/backends/clamd/protocol.js';
import { parseConfig } from '../../src/config/index.js';
import { expectProblem, SOURCE } from '../config/helpers.js';

const REPLIES: readonly (readonly [string, ScanReply])[] = [
  ['stream: OK', { verdict: 'clean' }],
  ['stream: Win.Test.EICAR_HDB-1 FOUND', { verdict: 'infected', threat: 'Win.Test.EICAR_HDB-1' }],
  ['stream: Eicar-Test-Sig.UNOFFICIAL FOUND', { verdict: 'infected', threat: 'Eicar-Test-Sig.UNOFFICIAL' }],
  // Dr.Web ClamD names may contain spaces (other-engines.md §1a): everything up to the last " FOUND".
  ['stream: EICAR Test File (NOT a Virus!) FOUND', { verdict: 'infected', threat: 'EICAR Test File (NOT a Virus!)' }],
  ['stream: A FOUND B FOUND', { verdict: 'infected', threat: 'A FOUND B' }],
  ['stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND', { verdict: 'infected', threat: 'Heuristics.Limits.Exceeded.MaxFileSize' }],
  ['INSTREAM size limit exceeded. ERROR', { verdict: 'error', kind: 'too-large', message: 'clamd: INSTREAM size limit exceeded. ERROR' }],
  ['stream: INSTREAM size limit exceeded. ERROR', { verdict: 'error', kind: 'too-large', message: 'clamd: stream: INSTREAM size limit exceeded. ERROR' }],
  ['stream: Exceeded max scan size ERROR', { verdict: 'error', kind: 'too-large', message: 'clamd: stream: Exceeded max scan size ERROR' }],
  ['stream: Exceeded time limit ERROR', { verdict: 'error', kind: 'timeout', message: 'clamd: stream: Exceeded time limit ERROR' }],
  ['stream: Bad format or broken data ERROR', { verdict: 'error', kind: 'unsupported', message: 'clamd: stream: Bad format or broken data ERROR' }],
  ['stream: Can\'t allocate memory ERROR', { verdict: 'error', kind: 'backend-error', message: 'clamd: stream: Can\'t allocate memory ERROR' }],
  ['Error processing command. ERROR', { verdict: 'error', kind: 'backend-error', message: 'clamd: Error processing command. ERROR' }],
  ['Error writing to temporary file ERROR', { verdict: 'error', kind: 'backend-error', message: 'clamd: Error writing to temporary file ERROR' }],
  ['COMMAND UNAVAILABLE', { verdict: 'error', kind: 'backend-error', message: 'clamd: COMMAND UNAVAILABLE (INSTREAM refused)' }],
  ['UNKNOWN COMMAND', { verdict: 'error', kind: 'backend-error', message: 'clamd: UNKNOWN COMMAND (INSTREAM refused)' }],
  [
    'COMMAND READ TIMED OUT',
    { verdict: 'error', kind: 'timeout', message: 'clamd: COMMAND READ TIMED OUT (the stream was idle longer than clamd ReadTimeout)' },
  ],
  ['stream: OK ', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply "stream: OK "' }],
  ['stream:  FOUND', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply "stream:  FOUND"' }],
  ['1: stream: OK', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply "1: stream: OK"' }],
  ['PONG', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply "PONG"' }],
  ['\u00ff\u0001garbage', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply "\u00ff\\u0001garbage"' }],
  ['', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply ""' }],
];

describe('parseScanReply', () => {
  it.each(REPLIES)('%j', (reply, expected) => {
    expect(parseScanReply(reply)).toEqual(expected);
  });

  it('never calls anything but exactly "stream: OK" clean', () => {
    for (const [reply, parsed] of REPLIES) if (parsed.verdict === 'clean') expect(reply).toBe('stream: OK');
  });
});

const SCANNED = '/var/spool/icap-bridge/icap-bridge-0a1b.scan';
/** Replies to `zSCAN <SCANNED>`; the error texts are what clamd 1.4.6 sends (seen in a run as another user). */
const PATH_REPLIES: readonly (readonly [string, ScanReply])[] = [
  [`${SCANNED}: OK`, { verdict: 'clean' }],
  [`${SCANNED}: IcapBridge.Test.Eicar.UNOFFICIAL FOUND`, { verdict: 'infected', threat: 'IcapBridge.Test.Eicar.UNOFFICIAL' }],
  [`${SCANNED}: Access denied. ERROR`, { verdict: 'inaccessible', reason: 'clamd: Access denied. ERROR' }],
  [
    `${SCANNED}: File path check failure: Permission denied. ERROR`,
    { verdict: 'inaccessible', reason: 'clamd: File path check failure: Permission denied. ERROR' },
  ],
  [
    `${SCANNED}: File path check failure: No such file or directory. ERROR`,
    { verdict: 'inaccessible', reason: 'clamd: File path check failure: No such file or directory. ERROR' },
  ],
  [`${SCANNED}: lstat() failed: Permission denied. ERROR`, { verdict: 'inaccessible', reason: 'clamd: lstat() failed: Permission denied. ERROR' }],
  [`${SCANNED}: Excluded`, { verdict: 'inaccessible', reason: 'clamd: Excluded' }],
  [`${SCANNED}: Empty file`, { verdict: 'inaccessible', reason: 'clamd: Empty file' }],
  // A scan failure on a file clamd did read is the scan's error, not a reason to resend.
  [`${SCANNED}: Exceeded max scan size ERROR`, { verdict: 'error', kind: 'too-large', message: `clamd: ${SCANNED}: Exceeded max scan size ERROR` }],
  [`${SCANNED}: Can't allocate memory ERROR`, { verdict: 'error', kind: 'backend-error', message: `clamd: ${SCANNED}: Can't allocate memory ERROR` }],
  // Another path, or the INSTREAM object name: never clean.
  ['/etc/passwd: OK', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply "/etc/passwd: OK"' }],
  ['stream: OK', { verdict: 'error', kind: 'backend-error', message: 'clamd: unexpected reply "stream: OK"' }],
  [`${SCANNED}: Excluded `, { verdict: 'error', kind: 'backend-error', message: `clamd: unexpected reply "${SCANNED}: Excluded "` }],
  ['UNKNOWN COMMAND', { verdict: 'error', kind: 'backend-error', message: 'clamd: UNKNOWN COMMAND (SCAN refused)' }],
  [
    'COMMAND READ TIMED OUT',
    { verdict: 'error', kind: 'timeout', message: 'clamd: COMMAND READ TIMED OUT (the stream was idle longer than clamd ReadTimeout)' },
  ],
];

describe('parsePathScanReply', () => {
  it.each(PATH_REPLIES)('%j', (reply, expected) => {
    expect(parsePathScanReply(reply, SCANNED)).toEqual(expected);
  });

  it('calls only "<the path we sent>: OK" clean', () => {
    for (const [reply, parsed] of PATH_REPLIES) if (parsed.verdict === 'clean') expect(reply).toBe(`${SCANNED}: OK`);
  });

  it('matches a non-ASCII path as ReplyReader decodes it (latin1 of the UTF-8 bytes)', () => {
    const path = '/tmp/spool-é/f.scan';
    const reader = new ReplyReader();
    reader.push(Buffer.from(`${path}: OK\0`, 'utf8'));
    expect(parsePathScanReply(reader.text!, path)).toEqual({ verdict: 'clean' });
  });
});

describe('scanPathCommand', () => {
  it('is zSCAN <path> NUL-terminated', () => {
    expect(scanPathCommand('/a b/c')?.toString('latin1')).toBe('zSCAN /a b/c\0');
  });

  it.each(['relative/path', '/with\nnewline', '/with\0nul', `/${'x'.repeat(MAX_REPLY_BYTES)}`])('refuses %j', (path) => {
    expect(scanPathCommand(path)).toBeNull();
  });
});

describe('ReplyReader', () => {
  it.each(REPLIES.map(([r]) => r))('reads %j split at every offset, NUL-terminated', (reply) => {
    const wire = Buffer.concat([Buffer.from(reply, 'latin1'), Buffer.from([0]), Buffer.from('trailing junk')]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const reader = new ReplyReader();
      const first = reader.push(wire.subarray(0, cut));
      const done = first || reader.push(wire.subarray(cut));
      expect(done, `cut ${cut}`).toBe(true);
      expect(reader.text, `cut ${cut}`).toBe(reply);
      expect(parseScanReply(reader.text!)).toEqual(parseScanReply(reply));
    }
  });

  it('reads byte by byte', () => {
    const reader = new ReplyReader();
    const wire = Buffer.from('stream: X FOUND\0', 'latin1');
    const results = [...wire].map((b) => reader.push(Buffer.from([b])));
    expect(results.indexOf(true)).toBe(wire.length - 1);
    expect(reader.text).toBe('stream: X FOUND');
  });

  it('ends a newline-terminated reply (COMMAND READ TIMED OUT is sent with \\n)', () => {
    const reader = new ReplyReader();
    expect(reader.push(Buffer.from('COMMAND READ TIMED OUT\n'))).toBe(true);
    expect(reader.text).toBe('COMMAND READ TIMED OUT');
  });

  it('keeps the unterminated rest as partial', () => {
    const reader = new ReplyReader();
    expect(reader.push(Buffer.from('stream: O'))).toBe(false);
    expect(reader.partial).toBe('stream: O');
    expect(reader.text).toBeNull();
  });

  it('stops at MAX_REPLY_BYTES without a terminator', () => {
    const reader = new ReplyReader();
    expect(reader.push(Buffer.alloc(MAX_REPLY_BYTES, 'a'))).toBe(false);
    expect(reader.state).toBe('reading');
    expect(reader.push(Buffer.from('a'))).toBe(false);
    expect(reader.state).toBe('overflow');
    expect(reader.push(Buffer.from('\0'))).toBe(false);
  });
});

describe('framing', () => {
  it('chunkHeader is a 4-byte big-endian length', () => {
    expect(chunkHeader(0x01020304)).toEqual(Buffer.from([1, 2, 3, 4]));
    expect(chunkHeader(65536)).toEqual(Buffer.from([0, 1, 0, 0]));
  });

  it('frameChunks splits at chunk_bytes and keeps views', () => {
    const data = Buffer.from('abcdefghij');
    const frames = frameChunks(data, 4);
    expect(frames.map((f) => f.toString('latin1'))).toEqual(['\0\0\0\x04', 'abcd', '\0\0\0\x04', 'efgh', '\0\0\0\x02', 'ij']);
    expect(frames[1]!.buffer).toBe(data.buffer);
    expect(frameChunks(Buffer.alloc(0), 4)).toEqual([]);
  });
});

describe('parseVersionReply', () => {
  it.each([
    ['ClamAV 1.4.6/27001/Sat Nov 21 09:41:47 2026', 'ClamAV 1.4.6/27001/Sat Nov 21 09:41:47 2026'],
    ['ClamAV 1.4.6', 'ClamAV 1.4.6'],
    ['COMMAND UNAVAILABLE', null],
    ['UNKNOWN COMMAND', null],
    ['Error processing command. ERROR', null],
    ['', null],
  ])('%j → %j', (reply, expected) => {
    expect(parseVersionReply(reply)).toBe(expected);
  });
});

describe('parseClamdEndpoint', () => {
  it.each([
    ['127.0.0.1:3310', { kind: 'tcp', host: '127.0.0.1', port: 3310 }],
    ['clamd.internal:3310', { kind: 'tcp', host: 'clamd.internal', port: 3310 }],
    ['[::1]:3310', { kind: 'tcp', host: '::1', port: 3310 }],
    ['/run/clamav/clamd.ctl', { kind: 'unix', path: '/run/clamav/clamd.ctl' }],
  ])('accepts %s', (text, expected) => {
    const parsed = parseClamdEndpoint(text);
    expect(parsed).toMatchObject({ ok: true, address: { ...expected, label: text } });
  });

  it.each([
    ['127.0.0.1', 'no port'],
    ['::1:3310', 'brackets'],
    ['[::1]3310', 'must be'],
    ['[1.2.3.4]:3310', 'not an IPv6 address'],
    ['127.0.0.1:0', 'port must be'],
    ['127.0.0.1:65536', 'port must be'],
    ['127.0.0.1:33a', 'port must be'],
    ['bad host:3310', 'not an IP address or a host name'],
    ['run/clamd.ctl', 'no port'],
    [`/${'x'.repeat(120)}`, 'longer than 107 bytes'],
  ])('rejects %s', (text, reason) => {
    const parsed = parseClamdEndpoint(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain(reason);
  });
});

describe('config: type clamd', () => {
  const clamd = (yaml: string) => `backends:\n  clam:\n    type: clamd\n${yaml.replace(/^/gm, '    ')}\nservices:\n  respmod:\n    backends: [clam]\n`;

  it('fills the defaults', () => {
    const config = parseConfig(clamd('endpoints: ["127.0.0.1:3310", "/run/clamav/clamd.ctl"]'), SOURCE, {});
    expect(config.backends['clam']).toEqual({
      type: 'clamd',
      endpoints: ['127.0.0.1:3310', '/run/clamav/clamd.ctl'],
      stream_max_bytes: 26_214_400,
      chunk_bytes: 65_536,
      connect_timeout_ms: 2000,
      read_timeout_ms: 60_000,
      version_command: true,
      transfer: 'instream',
      balance: 'round-robin',
      weights: {},
      max_concurrency: 8,
      max_queue: 32,
      eject_after: 3,
      cooldown_ms: 10_000,
      health_interval_ms: 5000,
      health_timeout_ms: 2000,
      dns: { enabled: false, server: '', min_ttl_ms: 1000, max_ttl_ms: 300_000 },
    });
  });

  it('takes transfer: path', () => {
    expect(parseConfig(clamd('endpoints: ["/run/clamav/clamd.ctl"]\ntransfer: path'), SOURCE, {}).backends['clam']).toMatchObject({ transfer: 'path' });
  });

  it('takes the pool keys', () => {
    const yaml = [
      'endpoints: ["clamd-a:3310", "clamd-b:3310"]',
      'balance: weighted',
      'weights: { "clamd-b:3310": 3 }',
      'eject_after: 2',
      'cooldown_ms: 500',
      'dns: { enabled: true, server: "127.0.0.1:5353", min_ttl_ms: 200 }',
    ].join('\n');
    expect(parseConfig(clamd(yaml), SOURCE, {}).backends['clam']).toMatchObject({
      balance: 'weighted',
      weights: { 'clamd-b:3310': 3 },
      eject_after: 2,
      cooldown_ms: 500,
      dns: { enabled: true, server: '127.0.0.1:5353', min_ttl_ms: 200, max_ttl_ms: 300_000 },
    });
  });

  it.each([
    ['endpoints required', 'stream_max_bytes: 10', 'backends.clam.endpoints', 'must be a non-empty list'],
    ['endpoints non-empty', 'endpoints: []', 'backends.clam.endpoints', 'must be a non-empty list'],
    ['endpoint without port', 'endpoints: ["127.0.0.1"]', 'backends.clam.endpoints[0]', 'no port'],
    ['bare IPv6', 'endpoints: ["::1:3310"]', 'backends.clam.endpoints[0]', 'brackets'],
    ['relative socket path', 'endpoints: ["clamd.ctl"]', 'backends.clam.endpoints[0]', 'no port'],
    ['duplicate endpoint', 'endpoints: ["127.0.0.1:3310", "127.0.0.1:3310"]', 'backends.clam.endpoints[1]', 'duplicate entry'],
    ['stream_max_bytes positive', 'endpoints: ["127.0.0.1:3310"]\nstream_max_bytes: 0', 'backends.clam.stream_max_bytes', 'must be an integer between 1 and 4294967295'],
    ['chunk_bytes bounded', 'endpoints: ["127.0.0.1:3310"]\nchunk_bytes: 16777217', 'backends.clam.chunk_bytes', 'between 1 and 16777216'],
    ['connect_timeout_ms positive', 'endpoints: ["127.0.0.1:3310"]\nconnect_timeout_ms: 0', 'backends.clam.connect_timeout_ms', 'must be an integer >= 1'],
    ['read_timeout_ms positive', 'endpoints: ["127.0.0.1:3310"]\nread_timeout_ms: 0', 'backends.clam.read_timeout_ms', 'must be an integer >= 1'],
    ['transfer instream or path', 'endpoints: ["127.0.0.1:3310"]\ntransfer: fildes', 'backends.clam.transfer', 'must be one of: instream, path'],
    ['version_command boolean', 'endpoints: ["127.0.0.1:3310"]\nversion_command: "no"', 'backends.clam.version_command', 'must be true or false'],
    ['max_concurrency at least 1', 'endpoints: ["127.0.0.1:3310"]\nmax_concurrency: 0', 'backends.clam.max_concurrency', 'must be an integer >= 1'],
    ['max_queue not negative', 'endpoints: ["127.0.0.1:3310"]\nmax_queue: -1', 'backends.clam.max_queue', 'must be an integer >= 0'],
    ['health_interval_ms floor', 'endpoints: ["127.0.0.1:3310"]\nhealth_interval_ms: 10', 'backends.clam.health_interval_ms', 'must be an integer >= 100'],
    ['unknown key', 'endpoints: ["127.0.0.1:3310"]\nworkers: 2', 'backends.clam.workers', 'unknown key'],
    ['balance one of three', 'endpoints: ["127.0.0.1:3310"]\nbalance: random', 'backends.clam.balance', 'must be one of'],
    ['weights name an endpoint', 'endpoints: ["127.0.0.1:3310"]\nweights: { "127.0.0.1:3311": 2 }', 'backends.clam.weights["127.0.0.1:3311"]', 'names no endpoint'],
    ['dns server is address:port', 'endpoints: ["127.0.0.1:3310"]\ndns: { server: "resolver.local" }', 'backends.clam.dns.server', 'address:port'],
    ['dns ttl bounds ordered', 'endpoints: ["127.0.0.1:3310"]\ndns: { min_ttl_ms: 5000, max_ttl_ms: 1000 }', 'backends.clam.dns.max_ttl_ms', 'at least dns.min_ttl_ms'],
  ])('%s', (_name, yaml, path, rule) => {
    expectProblem(clamd(yaml), path, rule);
  });
});
