/**
 * Client address lists: single addresses and CIDR blocks, IPv4 and IPv6, checked with
 * node:net's BlockList. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack
 * listener reports for an IPv4 peer) are checked as the IPv4 address they carry.
 */
import { BlockList, isIP } from 'node:net';

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** Why `text` is not an address or CIDR block, or undefined when it is one. */
export function cidrProblem(text: string): string | undefined {
  const [address = '', prefix, extra] = text.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return 'must be an IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.0/8 or 2001:db8::/32';
  if (prefix === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return `the prefix length must be an integer between 0 and ${max}`;
  return undefined;
}

export interface AddressSet {
  has(address: string): boolean;
}

/** Entries must have passed cidrProblem(). */
export function compileAddressSet(entries: readonly string[]): AddressSet {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return {
    has(address) {
      const plain = normalizeAddress(address);
      const family = isIP(plain);
      return family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/** `::ffff:a.b.c.d` → `a.b.c.d`; a zone id (`fe80::1%eth0`) is dropped. */
export function normalizeAddress(address: string): string {
  const trimmed = address.trim().replace(/%.*$/, '');
  const mapped = MAPPED_V4.exec(trimmed);
  return mapped ? mapped[1]! : trimmed;
}
