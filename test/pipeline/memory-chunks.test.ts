import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryChunks, RETAIN_MIN_BYTES } from '../../src/pipeline/memory-chunks.js';

/** Appends `data` cut at the given sizes (cycled), returns the holder. */
function appendInPieces(data: Buffer, sizes: readonly number[]): MemoryChunks {
  const chunks = new MemoryChunks();
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.append(data.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

const join = (it: Iterable<Buffer>): Buffer => Buffer.concat([...it]);

describe('MemoryChunks', () => {
  const data = randomBytes(200_000);
  const cuts: Record<string, number[]> = {
    'one byte at a time': [1],
    'small pieces': [7, 100, 3000, 1],
    'large pieces': [RETAIN_MIN_BYTES, 65536, 40_000],
    'small and large mixed': [5, RETAIN_MIN_BYTES + 1, 16_383, 2, 70_000, 1000],
  };

  for (const [name, sizes] of Object.entries(cuts)) {
    it(`keeps every byte in order: ${name}`, () => {
      const chunks = appendInPieces(data, sizes);
      expect(chunks.size).toBe(data.length);
      expect(join(chunks.pieces()).equals(data)).toBe(true);
      expect(chunks.toBuffer().equals(data)).toBe(true);
    });

    it(`slices any range into pieces no larger than asked: ${name}`, () => {
      const chunks = appendInPieces(data, sizes);
      const bounds = [0, 1, 4095, RETAIN_MIN_BYTES, 65_537, 100_000, 199_999, 200_000];
      for (const start of bounds) {
        for (const end of bounds) {
          if (end < start) continue;
          const pieces = [...chunks.slice(start, end, 4096)];
          expect(pieces.every((p) => p.length > 0 && p.length <= 4096), `[${start}, ${end})`).toBe(true);
          expect(Buffer.concat(pieces).equals(data.subarray(start, end)), `[${start}, ${end})`).toBe(true);
        }
      }
    });
  }

  it('keeps large pieces by reference and copies small ones into blocks of its own', () => {
    const large = Buffer.alloc(RETAIN_MIN_BYTES, 1);
    const small = Buffer.alloc(10, 2);
    const chunks = new MemoryChunks();
    chunks.append(small);
    chunks.append(large);
    const [first, second] = chunks.pieces();
    expect(first!.buffer).not.toBe(small.buffer);
    expect(second!.buffer).toBe(large.buffer);
  });

  it('holds a body of tiny pieces in a few blocks, not one object per piece', () => {
    const chunks = appendInPieces(Buffer.alloc(100_000, 7), [1]);
    expect(chunks.pieces().length).toBeLessThanOrEqual(Math.ceil(100_000 / (16 * 1024)));
  });

  it('never rewrites bytes already handed out, while more arrive', () => {
    const chunks = new MemoryChunks();
    chunks.append(Buffer.from('abc'));
    const early = chunks.toBuffer();
    chunks.append(Buffer.from('def'));
    chunks.append(Buffer.alloc(RETAIN_MIN_BYTES, 'x'));
    chunks.append(Buffer.from('ghi'));
    expect(early.toString()).toBe('abc');
    expect(chunks.toBuffer().subarray(0, 6).toString()).toBe('abcdef');
    expect(chunks.toBuffer().subarray(-3).toString()).toBe('ghi');
  });
});
