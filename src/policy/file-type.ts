/**
 * File type by magic bytes at the start of the body, for `match.file_type`. The table is small on
 * purpose: the types a policy typically treats differently (executables, archives, documents,
 * images). Everything else is `unknown`. Signatures sit at offset 0 and are at most
 * SNIFF_BYTES long, so the first bytes of a preview always suffice.
 *
 * ZIP covers every ZIP container (OOXML .docx/.xlsx, .jar, .apk, .odt); MS-OLE covers legacy
 * Office (.doc/.xls/.msi). A Java class file and a Mach-O universal binary share CAFEBABE; the
 * next 4 bytes tell them apart (architecture count, small, vs class file version, >= 45).
 */

export const FILE_TYPES = [
  'exe',
  'elf',
  'macho',
  'java-class',
  'script',
  'pdf',
  'zip',
  'gzip',
  'bzip2',
  'xz',
  'rar',
  '7z',
  'ole',
  'png',
  'jpeg',
  'gif',
  'unknown',
] as const;
export type FileType = (typeof FILE_TYPES)[number];

interface Signature {
  readonly type: Exclude<FileType, 'unknown'>;
  readonly magic: Buffer;
  /** Extra check on the bytes, when the magic alone is ambiguous. */
  readonly also?: (bytes: Buffer) => boolean;
}

const hex = (h: string): Buffer => Buffer.from(h.replace(/ /g, ''), 'hex');
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
// Java class files start with minor and major version; major is 45 (JDK 1.0) or more.
const fatArchCount = (b: Buffer): boolean => b.length >= 8 && b.readUInt32BE(4) < 45;

const SIGNATURES: readonly Signature[] = [
  { type: 'exe', magic: ascii('MZ') }, // DOS/PE: .exe, .dll, .sys, .scr
  { type: 'elf', magic: hex('7f 45 4c 46') },
  { type: 'macho', magic: hex('fe ed fa ce') },
  { type: 'macho', magic: hex('fe ed fa cf') },
  { type: 'macho', magic: hex('ce fa ed fe') },
  { type: 'macho', magic: hex('cf fa ed fe') },
  { type: 'macho', magic: hex('ca fe ba be'), also: fatArchCount },
  { type: 'java-class', magic: hex('ca fe ba be') },
  { type: 'script', magic: ascii('#!') },
  { type: 'pdf', magic: ascii('%PDF-') },
  { type: 'zip', magic: ascii('PK\x03\x04') },
  { type: 'zip', magic: ascii('PK\x05\x06') }, // empty archive
  { type: 'zip', magic: ascii('PK\x07\x08') }, // spanned archive
  { type: 'gzip', magic: hex('1f 8b') },
  { type: 'bzip2', magic: ascii('BZh') },
  { type: 'xz', magic: hex('fd 37 7a 58 5a 00') },
  { type: 'rar', magic: ascii('Rar!\x1a\x07') }, // RAR 4 (…00) and RAR 5 (…01 00)
  { type: '7z', magic: hex('37 7a bc af 27 1c') },
  { type: 'ole', magic: hex('d0 cf 11 e0 a1 b1 1a e1') },
  { type: 'png', magic: hex('89 50 4e 47 0d 0a 1a 0a') },
  { type: 'jpeg', magic: hex('ff d8 ff') },
  { type: 'gif', magic: ascii('GIF87a') },
  { type: 'gif', magic: ascii('GIF89a') },
];

/** Body bytes needed to tell every type in the table apart. */
export const SNIFF_BYTES = 8;

/**
 * The type of a body starting with `head`. `complete`: `head` is the whole body. Returns
 * undefined while more bytes could change the answer, and null for a body with no bytes.
 */
export function detectFileType(head: Buffer, complete: boolean): FileType | null | undefined {
  if (head.length === 0) return complete ? null : undefined;
  if (head.length < SNIFF_BYTES && !complete) return undefined;
  for (const sig of SIGNATURES) {
    if (head.length >= sig.magic.length && head.subarray(0, sig.magic.length).equals(sig.magic) && (sig.also?.(head) ?? true)) {
      return sig.type;
    }
  }
  return 'unknown';
}
