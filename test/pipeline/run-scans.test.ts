/**
 * runScans: a stream that lost its endpoint (a `retryable` error) is scanned once more from the
 * complete spool; every other stream outcome stands as it is.
 */
import { describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../../src/backends/backend.js';
import { runScans } from '../../src/pipeline/run-scans.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';

const META: ScanMeta = { transactionId: 't-1', method: 'RESPMOD', clientAddress: '127.0.0.1' };

function streamEnding(result: BackendResult): StreamingScan {
  return { write: () => true, onDrain: (l) => l(), end: async () => result, abort: () => {} };
}

function backend(scanResult: BackendResult): Backend & { scans: Buffer[] } {
  const scans: Buffer[] = [];
  return {
    name: 'clamav',
    version: 'test',
    scans,
    async scan(body) {
      const chunks: Buffer[] = [];
      for await (const c of body.createReadStream()) chunks.push(c as Buffer);
      scans.push(Buffer.concat(chunks));
      return scanResult;
    },
    status: () => [],
    close: async () => {},
  };
}

const lost: BackendResult = { outcome: 'error', backend: 'clamav', durationMs: 5, kind: 'backend-error', message: 'connection lost', retryable: true };
const clean: BackendResult = { outcome: 'clean', backend: 'clamav', durationMs: 1, endpoint: 'b' };

describe('runScans', () => {
  it('takes a backend\'s scanNow verdict without asking for meta or signal; undefined falls back to scan()', async () => {
    const body = spooledBodyFromBuffer(Buffer.from('x'));
    const quick: Backend = { ...backend(clean), scanNow: () => ({ outcome: 'clean', backend: 'quick', durationMs: 0, endpoint: 'inline' }) };
    const declines = { ...backend(clean), scanNow: () => undefined };
    let asked = 0;
    const meta = (): ScanMeta => (asked++, META);
    const signal = (): AbortSignal => (asked++, new AbortController().signal);
    expect(await runScans([quick], body, meta, signal)).toMatchObject([{ backend: 'quick', endpoint: 'inline' }]);
    expect(asked).toBe(0);
    expect(await runScans([declines], body, meta, signal)).toMatchObject([{ backend: 'clamav', endpoint: 'b' }]);
    expect(declines.scans).toHaveLength(1);
    expect(asked).toBe(2);
  });

  it('a retryable stream failure is scanned again from the spool, once', async () => {
    const b = backend(clean);
    const body = spooledBodyFromBuffer(Buffer.from('the whole body'));
    const results = await runScans([b], body, () => META, () => new AbortController().signal, new Map([[b, streamEnding(lost)]]));
    expect(results).toEqual([clean]);
    expect(b.scans.map(String)).toEqual(['the whole body']);
  });

  it('a replay that fails too is the answer (no second replay)', async () => {
    const failedAgain: BackendResult = { ...lost, message: 'unreachable everywhere', kind: 'unreachable' };
    const b = backend(failedAgain);
    const results = await runScans([b], spooledBodyFromBuffer(Buffer.from('x')), () => META, () => new AbortController().signal, new Map([[b, streamEnding(lost)]]));
    expect(results).toEqual([failedAgain]);
    expect(b.scans).toHaveLength(1);
  });

  it.each<[string, BackendResult]>([
    ['infected', { outcome: 'infected', backend: 'clamav', durationMs: 1, threats: ['Eicar'] }],
    ['clean', clean],
    ['too-large', { outcome: 'error', backend: 'clamav', durationMs: 1, kind: 'too-large', message: 'over stream_max_bytes' }],
    ['timeout', { outcome: 'error', backend: 'clamav', durationMs: 1, kind: 'timeout', message: 'no verdict' }],
    ['a non-retryable backend-error', { outcome: 'error', backend: 'clamav', durationMs: 1, kind: 'backend-error', message: 'COMMAND UNAVAILABLE' }],
  ])('%s from the stream stands', async (_what, result) => {
    const b = backend(clean);
    const results = await runScans([b], spooledBodyFromBuffer(Buffer.from('x')), () => META, () => new AbortController().signal, new Map([[b, streamEnding(result)]]));
    expect(results).toEqual([result]);
    expect(b.scans).toHaveLength(0);
  });

  it('no replay once the transaction is aborted', async () => {
    const b = backend(clean);
    const controller = new AbortController();
    controller.abort();
    const results = await runScans([b], spooledBodyFromBuffer(Buffer.from('x')), () => META, () => controller.signal, new Map([[b, streamEnding(lost)]]));
    expect(results).toEqual([lost]);
    expect(b.scans).toHaveLength(0);
  });
});
