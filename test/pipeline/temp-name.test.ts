import { describe, expect, it } from 'vitest';
import { randomFileName } from '../../src/pipeline/temp-name.js';

describe('randomFileName', () => {
  it('gives 24 hex digits between prefix and suffix, never the same twice across several draws', () => {
    // 256 names per draw: 1,000 names cross three refills.
    const names = Array.from({ length: 1000 }, () => randomFileName('icap-bridge-', '.body'));
    for (const name of names) expect(name).toMatch(/^icap-bridge-[0-9a-f]{24}\.body$/);
    expect(new Set(names).size).toBe(names.length);
  });
});
