/**
 * SHA-256 hash lists for the embedded engine.
 *
 * Format, one entry per line:
 *   <64 hex digits>[<whitespace or ':'><threat name>]
 * Hex is case-insensitive; a line whose first non-blank character is '#' is a comment; blank
 * lines are ignored; CRLF and a UTF-8 BOM are accepted. Without a name the threat is called
 * `Hash.SHA256.<first 12 hex>`. Anything else is an error naming file:line, so a typo in a list
 * fails the start instead of silently never matching.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CodedError, type ErrorCode } from '../../errors.js';

export const HASH_LIST_ERROR_CODE = 'ICAP_ERR_HASH_LIST_INVALID' satisfies ErrorCode;

export class HashListError extends CodedError<typeof HASH_LIST_ERROR_CODE> {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string, options?: ErrorOptions) {
    super(HASH_LIST_ERROR_CODE, line > 0 ? `${file}:${line}: ${message}` : `${file}: ${message}`, options);
    this.file = file;
    this.line = line;
  }
}

/** lower-case hex SHA-256 → threat name */
export type HashMap = Map<string, string>;

export interface LoadedHashLists {
  readonly hashes: ReadonlyMap<string, string>;
  /** First 16 hex of a SHA-256 over the sorted entries; changes whenever a verdict could. */
  readonly fingerprint: string;
}

// Hash, then the end of the line, whitespace, or a colon (spaces around it allowed); the rest,
// possibly empty, is the name.
const ENTRY = /^([0-9a-fA-F]{64})(?:\s*:|\s|$)\s*(.*)$/;

export function defaultThreatName(sha256: string): string {
  return `Hash.SHA256.${sha256.slice(0, 12).toLowerCase()}`;
}

/** Parses one list's text; `file` only labels errors. */
export function parseHashList(text: string, file: string): HashMap {
  const hashes: HashMap = new Map();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = ENTRY.exec(line);
    if (!match) {
      throw new HashListError(file, index + 1, `expected a SHA-256 (64 hex digits), optionally followed by a threat name, got ${JSON.stringify(truncate(line))}`);
    }
    const sha256 = match[1]!.toLowerCase();
    const name = match[2]!.trim() || defaultThreatName(sha256);
    // The first entry for a hash wins, within a file as across files (loadHashLists).
    if (!hashes.has(sha256)) hashes.set(sha256, name);
  });
  return hashes;
}

/** Reads and merges the lists (in the given order: the first name for a hash wins). */
export async function loadHashLists(files: readonly string[]): Promise<LoadedHashLists> {
  const hashes: HashMap = new Map();
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new HashListError(file, 0, `cannot read hash list: ${(err as Error).message}`, { cause: err });
    }
    for (const [sha256, name] of parseHashList(text, file)) {
      if (!hashes.has(sha256)) hashes.set(sha256, name);
    }
  }
  return { hashes, fingerprint: fingerprintHashes(hashes) };
}

/**
 * Over the merged, sorted entries rather than the raw files, so comments and line order do not
 * change the ISTag but every hash or threat name that could be reported does.
 */
export function fingerprintHashes(hashes: ReadonlyMap<string, string>): string {
  const digest = createHash('sha256');
  for (const sha256 of [...hashes.keys()].sort()) digest.update(`${sha256} ${hashes.get(sha256)}\n`);
  return digest.digest('hex').slice(0, 16);
}

function truncate(line: string): string {
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}
