import { describe, expect, it } from 'vitest';
import { cidrProblem, compileAddressSet, normalizeAddress } from '../../src/policy/index.js';

describe('cidrProblem', () => {
  it.each(['10.0.0.0/8', '192.0.2.1', '192.0.2.1/32', '0.0.0.0/0', '2001:db8::/32', '::1', '::1/128'])('%s is valid', (text) => {
    expect(cidrProblem(text)).toBeUndefined();
  });
  it.each([
    ['10.0.0/8', 'must be an IPv4 or IPv6 address'],
    ['10.0.0.0/33', 'between 0 and 32'],
    ['2001:db8::/129', 'between 0 and 128'],
    ['10.0.0.0/8/9', 'must be an IPv4 or IPv6 address'],
    ['10.0.0.0/x', 'between 0 and 32'],
    ['example.com', 'must be an IPv4 or IPv6 address'],
  ])('%s is rejected', (text, message) => {
    expect(cidrProblem(text)).toContain(message);
  });
});

describe('compileAddressSet', () => {
  const set = compileAddressSet(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
  const rows: [address: string, expected: boolean][] = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['2001:db8::1', true],
    ['2001:db9::1', false],
    // A dual-stack listener reports IPv4 peers in mapped form.
    ['::ffff:10.9.9.9', true],
    ['::ffff:11.0.0.1', false],
    ['not an address', false],
    ['', false],
  ];
  it.each(rows)('%s → %s', (address, expected) => {
    expect(set.has(address)).toBe(expected);
  });

  it('normalizes mapped addresses and zone ids', () => {
    expect(normalizeAddress('::FFFF:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(normalizeAddress(' 192.0.2.1 ')).toBe('192.0.2.1');
  });
});
