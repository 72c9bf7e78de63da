/**
 * Property-based fuzzing, bounded in time (undici's fuzzing.test.js): random bytes and mutated
 * valid requests either decode or fail with a coded IcapProtocolError — never another exception,
 * never a hang (every push returns; the whole run has a time budget).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, IcapDecoder, IcapProtocolError } from '../../protocol/index.js';

const WIRE = join(import.meta.dirname, '..', 'fixtures', 'wire');
const seeds = readdirSync(WIRE).map((f) => readFileSync(join(WIRE, f)));
const limits = { ...DEFAULT_LIMITS, icapHeaderBytes: 2048, httpHeaderBytes: 1024, bodyBytes: 1 << 20 };

function feed(pieces: Uint8Array[]): void {
  const decoder: IcapDecoder = new IcapDecoder((e) => {
    if (e.type === 'preview-end' && !e.ieof) decoder.continueBody();
  }, limits);
  try {
    for (const p of pieces) decoder.push(Buffer.from(p));
  } catch (err) {
    expect(err).toBeInstanceOf(IcapProtocolError);
    expect([400, 413, 501, 505]).toContain((err as IcapProtocolError).status);
  }
}

describe('decoder fuzz', () => {
  it('survives random bytes', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), feed), {
      numRuns: 2000,
      interruptAfterTimeLimit: 4000,
    });
  });

  it('survives mutated valid requests (byte flips, cuts, insertions)', () => {
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'insert')), { maxLength: 6 }),
        fc.integer({ min: 1, max: 64 }),
      )
      .map(([seed, edits, slice]) => {
        const bytes = [...seed];
        for (const [at, value, op] of edits) {
          const i = at % (bytes.length + 1);
          if (op === 'flip') bytes[i % bytes.length] = value;
          else if (op === 'cut') bytes.splice(i, value % 8);
          else bytes.splice(i, 0, value);
        }
        const buf = Uint8Array.from(bytes);
        const pieces: Uint8Array[] = [];
        for (let i = 0; i < buf.length; i += slice) pieces.push(buf.subarray(i, i + slice));
        return pieces;
      });
    fc.assert(fc.property(mutated, feed), { numRuns: 5000, interruptAfterTimeLimit: 6000 });
  });
});
