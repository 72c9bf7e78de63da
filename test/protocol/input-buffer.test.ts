/**
 * InputBuffer (protocol/input-buffer.ts): the unread input of a decoder. What it holds is always the
 * bytes appended minus the bytes consumed, however they arrive; views handed out stay as they were;
 * and input that trickles in is gathered in linear time, not by a copy of everything per arrival.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InputBuffer } from '../../protocol/input-buffer.js';

/** A small deterministic PRNG (mulberry32), so a failure replays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('InputBuffer', () => {
  it.each([1, 2, 3, 4, 5])('holds what was appended and not consumed, for random arrivals and reads (seed %i)', (seed) => {
    const random = prng(seed);
    const input = new InputBuffer();
    const source = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7 + seed) & 0xff));
    let appended = 0;
    let consumed = 0;
    while (consumed < source.length) {
      if (appended < source.length && random() < 0.6) {
        // Mostly small arrivals, now and then a large one, as sockets deliver.
        const size = random() < 0.1 ? Math.floor(random() * 70_000) : Math.floor(random() * 300);
        const chunk = Buffer.from(source.subarray(appended, Math.min(source.length, appended + size)));
        input.append(chunk);
        appended += chunk.length;
      } else if (input.length > 0) {
        const n = 1 + Math.floor(random() * input.length);
        input.consume(n);
        consumed += n;
      }
      expect(input.length).toBe(appended - consumed);
      if (input.length > 0) {
        const at = Math.floor(random() * input.length);
        expect(input.bytes[at]).toBe(source[consumed + at]);
      }
      expect(input.bytes.equals(source.subarray(consumed, appended))).toBe(true);
    }
  });

  it('leaves views it handed out as they were: appends write only behind the unread bytes', () => {
    const input = new InputBuffer();
    input.append(Buffer.from('abcdef'));
    input.append(Buffer.from('ghij')); // joined: now in memory of its own, with room behind
    const consumedView = input.bytes.subarray(0, 4);
    const unreadView = input.bytes.subarray(4);
    input.consume(4);
    for (let i = 0; i < 100; i++) input.append(Buffer.from('XYZ'));
    expect(consumedView.toString()).toBe('abcd');
    expect(unreadView.toString()).toBe('efghij');
    expect(input.bytes.toString()).toBe(`efghij${'XYZ'.repeat(100)}`);
  });

  it('gathers a 64 KiB head arriving a byte per read with a few dozen allocations, not one copy per byte', () => {
    const input = new InputBuffer();
    const allocations = vi.spyOn(Buffer, 'allocUnsafe');
    const byte = Buffer.from('x');
    const n = 64 * 1024;
    for (let i = 0; i < n; i++) input.append(byte);
    expect(input.length).toBe(n);
    expect(input.bytes.equals(Buffer.alloc(n, 'x'))).toBe(true);
    // Room grows by what was waiting, so by doubling: ~log2(64 Ki / 256) + a few. Buffer.concat per
    // arrival made 65,535 allocations (each a copy of everything so far).
    expect(allocations.mock.calls.length).toBeLessThan(40);
  });

  it('gives latin1 text of the unread bytes across joins and reads', () => {
    const input = new InputBuffer();
    input.append(Buffer.from('REQMOD icap://h/s ICAP/1.0\r\n', 'latin1'));
    expect(input.latin1(6)).toBe('REQMOD');
    input.append(Buffer.from('Host: h\r\n\r\n', 'latin1'));
    expect(input.latin1(input.length)).toBe('REQMOD icap://h/s ICAP/1.0\r\nHost: h\r\n\r\n');
    input.consume(7);
    expect(input.latin1(10)).toBe('icap://h/s');
  });
});
