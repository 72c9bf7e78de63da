/**
 * parseEncapsulated (RFC 3507 §4.4.1) against its previous implementation, which built an array of
 * entity objects per call: the same result or the same error message for every input, over
 * generated values (valid forms, wrong orders, odd case and spacing, too many entities, junk).
 */
import { describe, expect, it } from 'vitest';
import { parseEncapsulated } from '../../protocol/encapsulated.js';
import { parseEncapsulated as reference } from './reference/encapsulated-v1.js';

type Method = 'REQMOD' | 'RESPMOD' | 'OPTIONS';
const METHODS: Method[] = ['REQMOD', 'RESPMOD', 'OPTIONS'];
const NAMES = ['req-hdr', 'res-hdr', 'req-body', 'res-body', 'opt-body', 'null-body', 'REQ-HDR', 'Null-Body', 'foo-hdr', 'req_hdr', ''];
const OFFSETS = ['0', '12', '140', '140', '9999', '', '-1', '1x', '0012', '1'.repeat(15), '1'.repeat(16)];
const SPACES = ['', ' ', '  ', '\t', ' \u00a0'];
const VALID_FORMS: Record<Method, string[][]> = {
  REQMOD: [['req-hdr', 'null-body'], ['req-hdr', 'req-body'], ['req-body']],
  RESPMOD: [['req-hdr', 'res-hdr', 'res-body'], ['res-hdr', 'res-body'], ['res-body'], ['req-hdr', 'res-hdr', 'null-body'], ['res-hdr', 'null-body'], ['req-hdr', 'res-body']],
  OPTIONS: [['null-body'], ['opt-body']],
};

function outcome(f: () => unknown): unknown {
  try {
    return { ok: f() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('parseEncapsulated', () => {
  it('answers the common forms', () => {
    expect(parseEncapsulated('req-hdr=0, null-body=170', 'REQMOD', 65536)).toEqual({ headers: [{ name: 'req-hdr', length: 170 }], body: 'null-body', bodyOffset: 170 });
    expect(parseEncapsulated('req-hdr=0, res-hdr=137, res-body=296', 'RESPMOD', 65536)).toEqual({
      headers: [
        { name: 'req-hdr', length: 137 },
        { name: 'res-hdr', length: 159 },
      ],
      body: 'res-body',
      bodyOffset: 296,
    });
    expect(parseEncapsulated('null-body=0', 'OPTIONS', 65536)).toEqual({ headers: [], body: 'null-body', bodyOffset: 0 });
    expect(() => parseEncapsulated('req-hdr=0, res-hdr=1, req-hdr=2, res-hdr=3, res-body=4', 'RESPMOD', 65536)).toThrow('req-hdr is not allowed here');
  });

  it('gives what the previous implementation gave, for 20,000 generated values', () => {
    const next = random(20261122);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
    const messages = new Map<string, number>();
    for (let n = 0; n < 20_000; n++) {
      const method = pick(METHODS);
      // Half the values follow one of the method's valid forms (names in any case); the rest are random.
      const form = next() < 0.5 ? pick(VALID_FORMS[method]).map((name) => (next() < 0.2 ? name.toUpperCase() : name)) : null;
      const entities: string[] = [];
      const count = form?.length ?? 1 + Math.floor(next() * 6);
      let offset = 0;
      for (let i = 0; i < count; i++) {
        // Mostly increasing offsets from 0, as real clients send them; sometimes anything.
        const text = next() < 0.7 ? String(i === 0 ? 0 : (offset += Math.floor(next() * 300))) : pick(OFFSETS);
        entities.push(next() < 0.03 ? pick(['junk', '=5', 'req-hdr=', 'req-hdr 0']) : `${pick(SPACES)}${form?.[i] ?? pick(NAMES)}=${text}${pick(SPACES)}`);
      }
      const value = entities.join(next() < 0.9 ? ',' : ',,');
      const max = next() < 0.9 ? 65536 : 100;
      const got = outcome(() => parseEncapsulated(value, method, max));
      expect(got, `${method} ${JSON.stringify(value)}`).toEqual(outcome(() => reference(value, method, max)));
      const kind = 'ok' in (got as object) ? 'ok' : (got as { error: string }).error.replace(/[0-9]+|"[^"]*"|(?:REQMOD|RESPMOD|OPTIONS|[a-z]+-(?:hdr|body))\b.*$/g, '…');
      messages.set(kind, (messages.get(kind) ?? 0) + 1);
    }
    // The values are not all errors of one kind: over 500 valid ones, and at least five kinds of error.
    expect(messages.get('ok')).toBeGreaterThan(500);
    expect(messages.size).toBeGreaterThanOrEqual(6);
  });
});
