/** scanPartsWithBackends: one result per part and backend, whatever the backend does. */
import { describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanPart } from '../../src/backends/backend.js';
import { scanPartsWithBackends } from '../../src/pipeline/scan-parts.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';

const META = { transactionId: 't', method: 'REQMOD', clientAddress: '127.0.0.1', contentType: 'multipart/form-data; boundary=x' } as const;
const part = (label: string, text: string, contentType?: string): ScanPart => ({
  label,
  body: spooledBodyFromBuffer(Buffer.from(text)),
  ...(contentType !== undefined && { contentType }),
});
const PARTS = [part('a.txt', 'aaa', 'text/plain'), part('empty', ''), part('b.bin', 'BAD', 'application/octet-stream')];

function backend(name: string, extra: Partial<Backend> = {}): Backend & { seen: string[]; running: number; peak: number } {
  const b = {
    name,
    version: '1',
    seen: [] as string[],
    running: 0,
    peak: 0,
    async scan(body: { memory: Buffer | null }, meta: { contentType?: string }): Promise<BackendResult> {
      b.running++;
      b.peak = Math.max(b.peak, b.running);
      await new Promise((r) => setTimeout(r, 5));
      b.running--;
      const text = body.memory!.toString();
      b.seen.push(`${text}:${meta.contentType}`);
      return text.includes('BAD') ? { outcome: 'infected', backend: name, threats: ['Bad'], durationMs: 1 } : { outcome: 'clean', backend: name, durationMs: 1 };
    },
    status: () => [],
    close: async () => {},
    ...extra,
  };
  return b as never;
}

describe('scanPartsWithBackends', () => {
  it('scan() per part with the part\'s own media type; empty parts are clean unscanned; results by part, then backend', async () => {
    const one = backend('one');
    const two = backend('two');
    const { byPart, batches } = await scanPartsWithBackends([one, two], PARTS, META, new AbortController().signal);
    expect(byPart.map((rs) => rs.map((r) => `${r.backend}:${r.outcome}`))).toEqual([
      ['one:clean', 'two:clean'],
      ['one:clean', 'two:clean'],
      ['one:infected', 'two:infected'],
    ]);
    expect(one.seen.sort()).toEqual(['BAD:application/octet-stream', 'aaa:text/plain']);
    expect(batches).toEqual([]);
  });

  it('runs at most `concurrency` scans of one backend at once', async () => {
    const many = Array.from({ length: 9 }, (_, i) => part(`p${i}`, `x${i}`));
    const b = backend('b');
    await scanPartsWithBackends([b], many, META, new AbortController().signal, 3);
    expect(b.seen).toHaveLength(9);
    expect(b.peak).toBe(3);
  });

  it('scanParts: one call, its batch kept; a wrong result count or a throw becomes errors for every part', async () => {
    const batcher = backend('batcher', {
      scanParts: async (parts) => ({
        results: parts.map((p) => ({ outcome: 'clean', backend: 'batcher', durationMs: 1 }) as BackendResult),
        batch: { id: 'b1', endpoint: 'core:1', signed: true, verified: false, detail: 'bad signature' },
      }),
    });
    const short = backend('short', { scanParts: async () => ({ results: [] }) });
    const thrower = backend('thrower', {
      scanParts: async () => {
        throw new Error('boom');
      },
    });
    const { byPart, batches } = await scanPartsWithBackends([batcher, short, thrower], PARTS, META, new AbortController().signal);
    for (const results of byPart) {
      expect(results.map((r) => (r.outcome === 'error' ? `${r.backend}:error:${r.kind}` : `${r.backend}:${r.outcome}`))).toEqual([
        'batcher:clean',
        'short:error:backend-error',
        'thrower:error:backend-error',
      ]);
    }
    expect(batches).toEqual([{ id: 'b1', endpoint: 'core:1', signed: true, verified: false, detail: 'bad signature', backend: 'batcher' }]);
    expect(batcher.seen).toEqual([]);
  });

  it('a scan() that throws is an error result for that part only', async () => {
    const flaky = backend('flaky', {
      scan: async (body) => {
        if (body.memory!.toString() === 'aaa') throw new Error('worker died');
        return { outcome: 'clean', backend: 'flaky', durationMs: 1 };
      },
    });
    const { byPart } = await scanPartsWithBackends([flaky], PARTS, META, new AbortController().signal);
    expect(byPart.map(([r]) => r!.outcome)).toEqual(['error', 'clean', 'clean']);
  });
});
