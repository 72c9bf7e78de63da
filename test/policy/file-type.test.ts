import { describe, expect, it } from 'vitest';
import { detectFileType, FILE_TYPES, SNIFF_BYTES } from '../../src/policy/index.js';

const hex = (h: string): Buffer => Buffer.from(h.replace(/ /g, ''), 'hex');
const text = (s: string): Buffer => Buffer.from(s, 'latin1');
// Real starts of files, padded to more than SNIFF_BYTES with bytes no signature uses.
const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc(16, 0x20)]);

describe('detectFileType: the magic table', () => {
  const rows: [label: string, head: Buffer, expected: string][] = [
    ['PE executable', text('MZ\x90\x00\x03\x00\x00\x00'), 'exe'],
    ['ELF', hex('7f 45 4c 46 02 01 01 00'), 'elf'],
    ['Mach-O 32-bit', hex('fe ed fa ce 00 00 00 07'), 'macho'],
    ['Mach-O 64-bit', hex('fe ed fa cf 01 00 00 07'), 'macho'],
    ['Mach-O 32-bit, little-endian', hex('ce fa ed fe 07 00 00 00'), 'macho'],
    ['Mach-O 64-bit, little-endian', hex('cf fa ed fe 07 00 00 01'), 'macho'],
    ['Mach-O universal (2 architectures)', hex('ca fe ba be 00 00 00 02'), 'macho'],
    ['Java class (version 52)', hex('ca fe ba be 00 00 00 34'), 'java-class'],
    ['shell script', text('#!/bin/sh\necho hi\n'), 'script'],
    ['PDF', text('%PDF-1.7\n%\xe2\xe3'), 'pdf'],
    ['ZIP / OOXML / JAR', hex('50 4b 03 04 14 00 06 00'), 'zip'],
    ['empty ZIP', hex('50 4b 05 06 00 00 00 00'), 'zip'],
    ['spanned ZIP', hex('50 4b 07 08 00 00 00 00'), 'zip'],
    ['gzip', hex('1f 8b 08 00 00 00 00 00'), 'gzip'],
    ['bzip2', text('BZh91AY&SY'), 'bzip2'],
    ['xz', hex('fd 37 7a 58 5a 00 00 04'), 'xz'],
    ['RAR 4', hex('52 61 72 21 1a 07 00 cf'), 'rar'],
    ['RAR 5', hex('52 61 72 21 1a 07 01 00'), 'rar'],
    ['7z', hex('37 7a bc af 27 1c 00 04'), '7z'],
    ['MS-OLE (legacy Office, MSI)', hex('d0 cf 11 e0 a1 b1 1a e1'), 'ole'],
    ['PNG', hex('89 50 4e 47 0d 0a 1a 0a'), 'png'],
    ['JPEG', hex('ff d8 ff e0 00 10 4a 46'), 'jpeg'],
    ['GIF87a', text('GIF87a\x01\x00'), 'gif'],
    ['GIF89a', text('GIF89a\x01\x00'), 'gif'],
    ['plain text', text('hello, world\n'), 'unknown'],
    ['HTML', text('<!doctype html>'), 'unknown'],
  ];
  it.each(rows)('%s → %s', (_label, head, expected) => {
    expect(detectFileType(pad(head), false)).toBe(expected);
    expect(detectFileType(head, true)).toBe(expected);
  });

  it('covers every listed type except unknown', () => {
    const found = new Set(rows.map((r) => r[2]));
    expect([...FILE_TYPES].filter((t) => !found.has(t))).toEqual([]);
  });
});

describe('detectFileType: how many bytes it needs', () => {
  it('waits for SNIFF_BYTES unless the body is complete', () => {
    expect(detectFileType(text('MZ'), false)).toBeUndefined();
    expect(detectFileType(text('MZ'), true)).toBe('exe');
    expect(detectFileType(text('x'.repeat(SNIFF_BYTES - 1)), false)).toBeUndefined();
    expect(detectFileType(text('x'.repeat(SNIFF_BYTES)), false)).toBe('unknown');
  });

  it('says null for a body without bytes, and waits while none came yet', () => {
    expect(detectFileType(Buffer.alloc(0), true)).toBeNull();
    expect(detectFileType(Buffer.alloc(0), false)).toBeUndefined();
  });

  it('a short complete body matches only signatures that fit', () => {
    expect(detectFileType(hex('ca fe ba be'), true)).toBe('java-class'); // no architecture count to read
    expect(detectFileType(hex('89 50 4e 47'), true)).toBe('unknown'); // a truncated PNG magic
  });
});
