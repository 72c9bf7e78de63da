/**
 * MetaDefender Core answers → verdicts: the §4 code table (every code), blocked reasons, the
 * completion rule, "Not Found" in both unconfirmed shapes, sanitized-output detection, and the
 * submit status table — as pure functions, then each code and status produced by the emulator
 * and read by the real adapter.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Backend, BackendResult, ScanErrorKind, ScanMeta } from '../../src/backends/backend.js';
import { createMetaDefenderBackend, type MetaDefenderBackendOptions } from '../../src/backends/metadefender/metadefender-backend.js';
import {
  blockedReasons,
  engineThreats,
  isFinished,
  isNotFoundDocument,
  isResultDocument,
  mapResult,
  RESULT_CODES,
  sanitizedOutput,
  submitFailure,
  type CoreVerdict,
} from '../../src/backends/metadefender/result-map.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { ALL_RESULT_CODES, labelOf } from '../../emulators/metadefender/codes.js';
import { startEmulator, type EmulatorHandle } from '../../emulators/metadefender/emulator.js';

type Expected = 'clean' | 'infected' | 'policy' | ScanErrorKind;

/** The table as this test reads §4, written out independently of result-map.ts. */
const EXPECTED: Record<number, Expected> = {
  0: 'clean',
  1: 'infected',
  2: 'infected',
  3: 'backend-error',
  4: 'infected',
  5: 'backend-error',
  6: 'infected',
  7: 'clean',
  8: 'infected',
  9: 'too-large',
  10: 'unsupported',
  11: 'backend-error',
  12: 'encrypted',
  13: 'too-large',
  14: 'too-large',
  15: 'encrypted',
  16: 'timeout',
  17: 'policy',
  18: 'policy',
  19: 'backend-error',
  20: 'policy',
  21: 'infected',
  22: 'policy',
  23: 'unsupported',
};

function doc(
  code: number,
  opts: { result?: string; reason?: string; reasons?: string[]; engines?: Record<string, [number, string]>; processInfo?: boolean } = {},
): Record<string, unknown> {
  const d: Record<string, unknown> = {
    data_id: 'abc',
    scan_results: {
      progress_percentage: 100,
      scan_all_result_i: code,
      scan_all_result_a: labelOf(code),
      scan_details: Object.fromEntries(
        Object.entries(opts.engines ?? {}).map(([name, [c, threat]]) => [name, { scan_result_i: c, threat_found: threat }]),
      ),
    },
  };
  if (opts.processInfo !== false) {
    d['process_info'] = {
      progress_percentage: 100,
      result: opts.result ?? 'Allowed',
      blocked_reason: opts.reason ?? '',
      ...(opts.reasons && { blocked_reasons: opts.reasons }),
    };
  }
  return d;
}

function kindOf(v: CoreVerdict): string {
  return v.verdict === 'error' ? v.kind : v.verdict;
}

describe('result codes (§4)', () => {
  it('the adapter table and the emulator know exactly the codes of the spec', () => {
    const codes = Object.keys(RESULT_CODES).map(Number).sort((a, b) => a - b);
    expect(codes).toEqual([...ALL_RESULT_CODES].sort((a, b) => a - b));
    expect(codes).toEqual([...Object.keys(EXPECTED).map(Number), 255]);
    for (const code of codes) expect(RESULT_CODES[code]!.label).toBe(labelOf(code));
  });

  for (const [codeText, expected] of Object.entries(EXPECTED)) {
    const code = Number(codeText);
    it(`code ${code} (${labelOf(code)}) → ${expected}`, () => {
      for (const result of ['Allowed', 'Blocked']) {
        const v = mapResult(doc(code, { result, reason: result === 'Blocked' ? labelOf(code) : '' }));
        if (expected === 'policy') expect(kindOf(v)).toBe(result === 'Allowed' ? 'clean' : 'infected');
        // Clean codes follow Core's policy verdict: Blocked → blocked by the reason.
        else if (expected === 'clean') expect(kindOf(v)).toBe(result === 'Allowed' ? 'clean' : 'infected');
        else expect(kindOf(v), `${result}`).toBe(expected);
      }
    });
  }

  it('unknown codes are errors, never clean', () => {
    for (const code of [24, 99, 254, -1]) {
      expect(mapResult(doc(code))).toMatchObject({ verdict: 'error', kind: 'backend-error' });
    }
    expect(mapResult({ scan_results: { progress_percentage: 100 } })).toMatchObject({ verdict: 'error' });
    expect(mapResult({ scan_results: { scan_all_result_i: '1' } })).toMatchObject({ verdict: 'error' });
    expect(mapResult(null)).toMatchObject({ verdict: 'error' });
    expect(mapResult(doc(255))).toMatchObject({ verdict: 'error' });
  });

  it('infected takes the engines\' names (results 1, 2 and 22 only), deduplicated', () => {
    const v = mapResult(
      doc(1, {
        result: 'Blocked',
        reason: 'Infected',
        engines: { A: [1, 'Win.Test.EICAR_HDB-1'], B: [1, 'EICAR-Test-File'], C: [1, 'EICAR-Test-File'], D: [0, ''], E: [3, 'engine crashed'] },
      }),
    );
    expect(v).toEqual({ verdict: 'infected', threats: ['Win.Test.EICAR_HDB-1', 'EICAR-Test-File'], byPolicy: false });
  });

  it('infected without engine names falls back to the blocked reasons, then the label', () => {
    expect(mapResult(doc(8, { result: 'Blocked', reason: 'Blocklisted' }))).toMatchObject({ threats: ['Blocklisted'] });
    expect(mapResult(doc(21, { result: 'Blocked' }))).toMatchObject({ threats: ['YARA Rule Matched'] });
  });

  it('a detection blocks even when Core\'s policy allowed it', () => {
    expect(mapResult(doc(1, { result: 'Allowed', engines: { A: [1, 'X'] } }))).toMatchObject({ verdict: 'infected', threats: ['X'] });
  });

  it('without process_info (old servers) a policy finding blocks and a clean code is clean', () => {
    expect(mapResult(doc(20, { processInfo: false }))).toMatchObject({ verdict: 'infected', threats: ['Sensitive Data Found'] });
    expect(mapResult(doc(22, { processInfo: false, engines: { A: [22, 'PUA.Toolbar'] } }))).toMatchObject({ threats: ['PUA.Toolbar'] });
    expect(mapResult(doc(0, { processInfo: false }))).toEqual({ verdict: 'clean' });
  });
});

describe('blocked reasons (§3 process_info)', () => {
  it('a clean code blocked by policy is blocked with the reason as the threat', () => {
    expect(mapResult(doc(0, { result: 'Blocked', reason: 'Sanitization Failed' }))).toEqual({
      verdict: 'infected',
      threats: ['Sanitization Failed'],
      byPolicy: true,
    });
    expect(mapResult(doc(0, { result: 'Blocked' }))).toMatchObject({ verdict: 'infected', threats: ['Blocked by MetaDefender policy'] });
  });

  it('a reason that names a condition Core could not judge maps to that error kind', () => {
    const cases: [string, ScanErrorKind][] = [
      ['Encrypted Archive', 'encrypted'],
      ['password protected document', 'encrypted'],
      ['Exceeded Archive Size', 'too-large'],
      ['Unsupported File Type', 'unsupported'],
      ['Exceeded Archive Timeout', 'timeout'],
      ['Failed', 'backend-error'],
    ];
    for (const [reason, kind] of cases) expect(mapResult(doc(0, { result: 'Blocked', reason }))).toMatchObject({ verdict: 'error', kind });
    // Mixed with a finding, the finding wins.
    expect(mapResult(doc(0, { result: 'Blocked', reasons: ['Encrypted Archive', 'Sensitive Data Found'] }))).toMatchObject({ verdict: 'infected' });
  });

  it('prefers the v5 blocked_reasons array over blocked_reason', () => {
    const d = doc(0, { result: 'Blocked', reason: 'Old', reasons: ['A', 'B', 'A', ''] });
    expect(blockedReasons(d)).toEqual(['A', 'B']);
    expect(blockedReasons(doc(0, { result: 'Blocked', reason: 'Only', reasons: [] }))).toEqual(['Only']);
  });

  it('engine threats ignore error texts', () => {
    expect(engineThreats(doc(3, { engines: { A: [3, 'timeout'], B: [10, 'not scanned'] } }))).toEqual([]);
  });
});

describe('completion rule (§3) and Not Found (§3, §6, unconfirmed)', () => {
  it('finished only at 100 % and not Processing; falls back to scan_results; never at 255', () => {
    expect(isFinished(doc(0))).toBe(true);
    expect(isFinished({ ...doc(0), process_info: { progress_percentage: 100, result: 'Processing' } })).toBe(false);
    expect(isFinished({ ...doc(0), process_info: { progress_percentage: 60, result: 'Allowed' } })).toBe(false);
    expect(isFinished(doc(0, { processInfo: false }))).toBe(true);
    expect(isFinished({ scan_results: { progress_percentage: 40, scan_all_result_i: 0 } })).toBe(false);
    expect(isFinished(doc(255))).toBe(false);
    expect(isFinished({})).toBe(false);
  });

  it('with process_info present, only process_info decides: the AV part at 100 is not the end', () => {
    // The reviewer's document: antivirus done and clean, the policy stages still running.
    const avDone = { progress_percentage: 100, scan_all_result_i: 0 };
    expect(isFinished({ scan_results: avDone, process_info: { result: 'Processing' } })).toBe(false);
    // A percentage in process_info that is missing, not an integer, or below 100: not finished.
    for (const progress of [undefined, null, '100', 99.5, 60]) {
      expect(isFinished({ scan_results: avDone, process_info: { progress_percentage: progress, result: 'Allowed' } }), String(progress)).toBe(false);
    }
    expect(isFinished({ scan_results: avDone, process_info: { progress_percentage: 100, result: ' processing ' } })).toBe(false);
    // process_info that is no object is not understood: not finished, so never answered clean.
    expect(isFinished({ scan_results: avDone, process_info: 'Processing' })).toBe(false);
    // Absent (or null): the old-server fallback to scan_results (§3).
    expect(isFinished({ scan_results: avDone, process_info: null })).toBe(true);
    expect(isFinished({ scan_results: avDone })).toBe(true);
  });

  it('tells a partial result from some other message', () => {
    expect(isResultDocument({ data_id: 'abc' })).toBe(true);
    expect(isResultDocument({ file_info: { display_name: 'a' } })).toBe(true);
    expect(isResultDocument(doc(255))).toBe(true);
    expect(isResultDocument({ message: 'Not found' })).toBe(false);
    expect(isResultDocument({})).toBe(false);
    expect(isResultDocument('Not Found')).toBe(false);
  });

  it('recognises the single-member "Not Found" object, whatever the key', () => {
    expect(isNotFoundDocument({ '3f0c9e2a7b6d4c1e8a5f0b2d4e6c8a1f': 'Not Found' })).toBe(true);
    expect(isNotFoundDocument({ ABCDEF: 'not found' })).toBe(true);
    expect(isNotFoundDocument({ a: 'Not Found', b: 1 })).toBe(false);
    expect(isNotFoundDocument({ err: 'File could not be found' })).toBe(false);
    expect(isNotFoundDocument(doc(0))).toBe(false);
    expect(isNotFoundDocument(['Not Found'])).toBe(false);
  });
});

describe('sanitized output (§3, §5)', () => {
  it('finds the Cloud link first, then Core post_processing', () => {
    const withPost = (actions: string) => ({ ...doc(0), process_info: { progress_percentage: 100, result: 'Allowed', post_processing: { actions_ran: actions, converted_destination: 'x_clean.pdf' } } });
    expect(sanitizedOutput(withPost('Sanitized'))).toEqual({ from: 'converted', fileName: 'x_clean.pdf' });
    expect(sanitizedOutput(withPost('script1|Sanitized Partially'))).toMatchObject({ from: 'converted' });
    expect(sanitizedOutput(withPost('Sanitization Skipped'))).toBeUndefined();
    expect(sanitizedOutput(withPost(''))).toBeUndefined();
    expect(sanitizedOutput({ ...withPost(''), sanitized: { file_path: 'https://cloud/x', result: 'Allowed' } })).toEqual({
      from: 'link',
      url: 'https://cloud/x',
      fileName: 'x_clean.pdf',
    });
    expect(sanitizedOutput({ sanitized: { file_path: 'javascript:alert(1)' } })).toBeUndefined();
  });
});

describe('submit statuses (§2)', () => {
  const cases: [number, string | undefined, boolean, ScanErrorKind, RegExp][] = [
    [400, 'Invalid apikey.', false, 'backend-error', /apikey/],
    [400, 'Not enough free disk space', true, 'overloaded', /disk/],
    [401, undefined, false, 'backend-error', /apikey/],
    [403, 'Access denied', false, 'backend-error', /denied/],
    [411, 'Missing Content-Length header.', false, 'backend-error', /bug in icap-bridge/],
    [413, undefined, false, 'too-large', /too large/],
    [422, 'File is empty.', false, 'backend-error', /empty/],
    [429, undefined, true, 'overloaded', /busy/],
    [500, 'boom', false, 'backend-error', /boom/],
    [503, 'Server is too busy. Try again later.', true, 'overloaded', /busy/],
    [418, undefined, false, 'backend-error', /418/],
  ];
  for (const [status, err, retry, kind, message] of cases) {
    it(`${status} ${err ?? ''} → ${kind}${retry ? ', retried elsewhere' : ''}`, () => {
      const f = submitFailure(status, err);
      expect(f).toMatchObject({ retryElsewhere: retry, kind });
      expect(f.message).toMatch(message);
    });
  }
});

describe('against the emulator', () => {
  const META: ScanMeta = { transactionId: 'map-1', method: 'RESPMOD', clientAddress: '127.0.0.1' };
  const emulators: EmulatorHandle[] = [];
  const backends: Backend[] = [];
  let coded: EmulatorHandle;

  async function backendFor(em: EmulatorHandle, overrides: Partial<MetaDefenderBackendOptions> = {}): Promise<Backend> {
    const b = await createMetaDefenderBackend({
      name: 'md',
      endpoints: [em.url],
      apikey: '',
      rule: '',
      timeoutMs: 5000,
      pollInitialMs: 2,
      pollMaxMs: 20,
      hashLookup: false,
      sanitize: false,
      maxFileBytes: 0,
      spool: { memoryBytes: 1 << 20, directory: '/tmp' },
      pool: { health_interval_ms: 0 },
      ...overrides,
    });
    backends.push(b);
    return b;
  }

  async function emulator(options: Parameters<typeof startEmulator>[0]): Promise<EmulatorHandle> {
    const em = await startEmulator(options);
    emulators.push(em);
    return em;
  }

  function scanAs(b: Backend, fileName: string, body = Buffer.from('plain content\n')): Promise<BackendResult> {
    return b.scan(spooledBodyFromBuffer(body), { ...META, url: `http://origin.example/files/${fileName}` }, new AbortController().signal);
  }

  beforeAll(async () => {
    // One result rule per code, chosen by file name suffix.
    const codes = Object.keys(EXPECTED).map(Number);
    coded = await emulator({ scanDurationMs: 0, resultRules: codes.map((code) => ({ filenameSuffix: `.code${code}`, code })) });
  });

  afterAll(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all(emulators.map((e) => e.close()));
  });

  it('every code the emulator produces maps as the table says', async () => {
    const b = await backendFor(coded);
    for (const [codeText, expected] of Object.entries(EXPECTED)) {
      const code = Number(codeText);
      const r = await scanAs(b, `f.code${code}`);
      // The emulator applies Core's default policy: codes 0, 5, 7, 10, 18, 20 allowed, others blocked.
      const allowed = [0, 5, 7, 10, 18, 20].includes(code);
      const want = expected === 'policy' ? (allowed ? 'clean' : 'infected') : expected;
      const got = r.outcome === 'error' ? r.kind : r.outcome;
      expect(got, `code ${code}: ${JSON.stringify(r)}`).toBe(want);
    }
  });

  it('a result rule can override the policy verdict and the reason', async () => {
    const em = await emulator({
      scanDurationMs: 0,
      resultRules: [
        { filenameSuffix: '.dlp', code: 20, result: 'Blocked', blockedReason: 'Sensitive Data Found' },
        { filenameSuffix: '.pua', code: 22, result: 'Allowed' },
        { filenameSuffix: '.custom', code: 0, result: 'Blocked', blockedReason: 'Custom Rule 7' },
      ],
    });
    const b = await backendFor(em);
    expect(await scanAs(b, 'a.dlp')).toMatchObject({ outcome: 'infected', threats: ['Sensitive Data Found'] });
    expect(await scanAs(b, 'a.pua')).toMatchObject({ outcome: 'clean' });
    expect(await scanAs(b, 'a.custom')).toMatchObject({ outcome: 'infected', threats: ['Custom Rule 7'] });
  });

  it('post-processing (§3): the AV part done and clean is not the end; the adapter takes the final verdict', async () => {
    for (const progress of ['missing', 'behind'] as const) {
      const em = await emulator({
        scanDurationMs: 0,
        postProcessing: { durationMs: 150, progress },
        resultRules: [{ filenameSuffix: '.dlp', code: 20, result: 'Blocked', blockedReason: 'Sensitive Data Found' }],
        sanitize: { filenameSuffixes: ['.docx'] },
      });
      const b = await backendFor(em, { sanitize: true });
      // Polled from 2 ms on: the first answers have scan_results at 100 and clean, process_info "Processing".
      expect(await scanAs(b, 'payroll.dlp'), progress).toMatchObject({ outcome: 'infected', threats: ['Sensitive Data Found'] });
      const sanitized = await scanAs(b, 'report.docx');
      expect(sanitized.outcome, progress).toBe('sanitized');
      if (sanitized.outcome === 'sanitized') await sanitized.dispose();
      expect(em.stats.requests.filter((r) => r.route === 'poll').length, progress).toBeGreaterThan(4);
    }
  });

  it('400 / 401 for a bad apikey, 403 for a rule not permitted: backend-error with a clear message', async () => {
    const em400 = await emulator({ apikeys: ['right'], scanDurationMs: 0 });
    const em401 = await emulator({ apikeys: ['right'], authErrorStatus: 401, scanDurationMs: 0 });
    const em403 = await emulator({ scanDurationMs: 0, rules: [{ name: 'File scan' }, { name: 'Agents only', userAgents: ['mdicapserver'] }] });
    expect(await scanAs(await backendFor(em400, { apikey: 'wrong' }), 'a.txt')).toMatchObject({
      outcome: 'error',
      kind: 'backend-error',
      message: expect.stringMatching(/HTTP 400: Invalid apikey.*check the apikey/),
    });
    expect(await scanAs(await backendFor(em401), 'a.txt')).toMatchObject({ kind: 'backend-error', message: expect.stringMatching(/apikey \(HTTP 401/) });
    expect(await scanAs(await backendFor(em400, { apikey: 'right' }), 'a.txt')).toMatchObject({ outcome: 'clean' });
    expect(await scanAs(await backendFor(em403, { rule: 'Agents only' }), 'a.txt')).toMatchObject({
      kind: 'backend-error',
      message: expect.stringMatching(/denied.*HTTP 403/),
    });
    expect(await scanAs(await backendFor(em403, { rule: 'No such rule' }), 'a.txt')).toMatchObject({ kind: 'backend-error' });
  });

  it('411 for a chunked upload, 422 for an empty one (the adapter never sends either)', async () => {
    const em = await emulator({ scanDurationMs: 0 });
    const chunked = await request(`${em.url}/file`, {
      method: 'POST',
      // A stream without a declared length: undici sends it chunked.
      body: Readable.from([Buffer.from('chunked body')]),
    });
    expect(chunked.statusCode).toBe(411);
    expect(await chunked.body.json()).toEqual({ err: 'Missing Content-Length header.' });
    const empty = await request(`${em.url}/file`, { method: 'POST', body: Buffer.alloc(0), headers: { 'content-length': '0' } });
    expect(empty.statusCode).toBe(422);
    await empty.body.dump();
    // An empty body is clean without a request at all (§2: short-circuit, do not submit).
    const b = await backendFor(em);
    const before = em.stats.requests.filter((r) => r.route === 'submit').length;
    expect(await scanAs(b, 'empty.txt', Buffer.alloc(0))).toMatchObject({ outcome: 'clean' });
    expect(em.stats.requests.filter((r) => r.route === 'submit').length).toBe(before);
  });

  it('500 is a backend error; 503 with no other endpoint is overloaded', async () => {
    const small = await emulator({ scanDurationMs: 0, maxBodyBytes: 8 });
    expect(await scanAs(await backendFor(small), 'a.txt', Buffer.alloc(64, 'a'))).toMatchObject({
      kind: 'backend-error',
      message: expect.stringMatching(/HTTP 500/),
    });
    const busy = await emulator({ scanDurationMs: 0, faults: { status503Rate: { submit: 1 } } });
    expect(await scanAs(await backendFor(busy), 'a.txt')).toMatchObject({ kind: 'overloaded', message: expect.stringMatching(/busy \(HTTP 503/) });
  });

  it('the emulator\'s sanitization failure blocks by reason', async () => {
    const em = await emulator({ scanDurationMs: 0, sanitize: { failSuffixes: ['.doc'] } });
    expect(await scanAs(await backendFor(em, { sanitize: true }), 'x.doc')).toMatchObject({ outcome: 'infected', threats: ['Sanitization Failed'] });
  });
});
