/**
 * The clamd socket protocol as pure functions (shared/specs/clamd-protocol.md): the commands we
 * send, INSTREAM chunk framing, an incremental reply reader and the reply → outcome mapping.
 * No sockets here; clamd-connection.ts and instream-scan.ts do the I/O.
 *
 * We only speak `z` commands (§1): the command and clamd's reply both end with a NUL byte.
 */
import type { ScanErrorKind } from '../backend.js';

/** §1: `z` prefix, NUL terminator — robust whatever the reply text contains. */
export const PING_COMMAND = Buffer.from('zPING\0', 'latin1');
export const VERSION_COMMAND = Buffer.from('zVERSION\0', 'latin1');
export const INSTREAM_COMMAND = Buffer.from('zINSTREAM\0', 'latin1');
/**
 * §2: `zSCAN <absolute path>\0` — clamd reads the file itself and stops at the first detection
 * (CONTSCAN would go on looking for more, which a block/allow verdict does not need). null for a
 * path the framing cannot carry: not absolute, or holding NUL (our terminator) or a newline
 * (ReplyReader would cut the reply, which echoes the path, there).
 */
export function scanPathCommand(path: string): Buffer | null {
  if (!path.startsWith('/') || /[\0\n]/.test(path)) return null;
  const command = Buffer.from(`zSCAN ${path}\0`, 'utf8');
  // The reply echoes the path: leave room for it plus a message within MAX_REPLY_BYTES.
  return command.length > MAX_REPLY_BYTES / 2 ? null : command;
}

/** §3: a zero-length chunk ends the stream. */
export const END_OF_STREAM = Buffer.alloc(4);

/** Longest reply we accept; a detection name or a version line is far shorter. */
export const MAX_REPLY_BYTES = 4096;

/** §3: 4-byte unsigned, network byte order length prefix of one INSTREAM chunk (length ≥ 1). */
export function chunkHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(length, 0);
  return header;
}

/**
 * Frames `data` as INSTREAM chunks of at most `chunkBytes` each: header, view, header, view…
 * The data pieces are views (subarray), never copies.
 */
export function frameChunks(data: Buffer, chunkBytes: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunkBytes) {
    const piece = data.subarray(at, Math.min(at + chunkBytes, data.length));
    frames.push(chunkHeader(piece.length), piece);
  }
  return frames;
}

type ReaderState = 'reading' | 'complete' | 'overflow';

/**
 * Collects one reply from arbitrary slices. It ends at NUL (the `z` terminator); a newline ends
 * it too, because clamd answers `COMMAND READ TIMED OUT` with `\n` whatever the prefix (§3).
 * Bytes after the terminator are ignored: clamd sends one reply per connection without a session.
 */
export class ReplyReader {
  #state: ReaderState = 'reading';
  #parts: Buffer[] = [];
  #length = 0;
  #text: string | null = null;

  get state(): ReaderState {
    return this.#state;
  }

  /** The reply without its terminator, once complete. */
  get text(): string | null {
    return this.#text;
  }

  /** Bytes received so far without a terminator (for a connection closed mid-reply). */
  get partial(): string {
    return Buffer.concat(this.#parts, this.#length).toString('latin1');
  }

  /** Returns true once a complete reply is available. */
  push(data: Buffer): boolean {
    if (this.#state !== 'reading') return this.#state === 'complete';
    let end = -1;
    for (let i = 0; i < data.length; i++) {
      const byte = data[i];
      if (byte === 0x00 || byte === 0x0a) {
        end = i;
        break;
      }
    }
    const take = end === -1 ? data.length : end;
    // Limits while parsing, not after (STYLE.md).
    if (this.#length + take > MAX_REPLY_BYTES) {
      this.#state = 'overflow';
      this.#parts = [];
      return false;
    }
    if (take > 0) {
      this.#parts.push(data.subarray(0, take));
      this.#length += take;
    }
    if (end === -1) return false;
    this.#text = this.partial;
    this.#parts = [];
    this.#state = 'complete';
    return true;
  }
}

/** What one scan reply means. */
export type ScanReply =
  | { readonly verdict: 'clean' }
  | { readonly verdict: 'infected'; readonly threat: string }
  | { readonly verdict: 'error'; readonly kind: ScanErrorKind; readonly message: string }
  /**
   * SCAN by path only: clamd did not scan the file because it cannot reach it (permission,
   * missing path, ExcludePath). The body must still be scanned, by INSTREAM.
   */
  | { readonly verdict: 'inaccessible'; readonly reason: string };

/** §3: INSTREAM replies name the object `stream`. */
const STREAM_PREFIX = 'stream: ';

/**
 * libclamav's error texts (cl_strerror) that mean something more specific than "the engine
 * failed"; the rest, and every text Dr.Web may send instead (unconfirmed), stay backend-error.
 */
const ERROR_REASONS: readonly (readonly [RegExp, ScanErrorKind])[] = [
  // §3: the StreamMaxLength budget. clamd sends it without the "stream: " prefix, then closes.
  [/size limit exceeded/i, 'too-large'],
  [/^Exceeded max (scan size|scan files|recursion depth)/i, 'too-large'],
  [/^Exceeded (scan )?time limit/i, 'timeout'],
  [/^(Bad format or broken data|Can't parse data|Can't unpack some data)/i, 'unsupported'],
];

/**
 * What clamd 1.x answers to SCAN when it could not read the file, i.e. scanned nothing
 * (seen with 1.4.6: `<path>: File path check failure: Permission denied. ERROR` for a directory
 * it cannot enter, `…: No such file or directory. ERROR` for a path it does not see,
 * `<path>: Access denied. ERROR` for a file it may not open; older texts: lstat()/stat()/open()
 * failed, Can't open file or directory).
 */
const INACCESSIBLE = /File path check failure|Access denied|Permission denied|No such file|lstat\(\) failed|stat\(\) failed|Can't (stat|open)|open\(\) failed|Not supported file type/i;

/** Maps one INSTREAM reply (terminator removed) to an outcome. Anything unexpected is an error, never clean. */
export function parseScanReply(reply: string): ScanReply {
  return parseObjectReply(reply, STREAM_PREFIX, 'INSTREAM');
}

/**
 * Maps one reply to `zSCAN <path>` (spec §3 "Path command replies"): `<path>: OK`,
 * `<path>: <Name> FOUND`, `<path>: <message> ERROR`, `<path>: Excluded`. Only a reply about the
 * path we sent counts; "could not read it" and "excluded" (and the old "Empty file") mean the
 * file was not scanned: 'inaccessible', never clean.
 */
export function parsePathScanReply(reply: string, path: string): ScanReply {
  // ReplyReader decodes latin1; the path went out as UTF-8.
  const prefix = `${Buffer.from(path, 'utf8').toString('latin1')}: `;
  if (reply.startsWith(prefix)) {
    const rest = reply.slice(prefix.length);
    if (rest === 'Excluded' || rest === 'Empty file') return { verdict: 'inaccessible', reason: `clamd: ${rest}` };
    if (rest.endsWith(' ERROR') && INACCESSIBLE.test(rest)) return { verdict: 'inaccessible', reason: `clamd: ${rest.slice(0, 200)}` };
  }
  return parseObjectReply(reply, prefix, 'SCAN');
}

function parseObjectReply(reply: string, prefix: string, command: string): ScanReply {
  if (reply === `${prefix}OK`) return { verdict: 'clean' };
  if (reply.endsWith(' ERROR')) {
    const reason = (reply.startsWith(prefix) ? reply.slice(prefix.length) : reply).slice(0, -' ERROR'.length);
    const mapped = ERROR_REASONS.find(([pattern]) => pattern.test(reason));
    return { verdict: 'error', kind: mapped?.[1] ?? 'backend-error', message: `clamd: ${reply}` };
  }
  // §3: names never contain spaces in ClamAV, but Dr.Web ClamD's may (other-engines.md §1a,
  // unconfirmed), so the name is everything between the prefix and the last " FOUND".
  if (reply.startsWith(prefix) && reply.endsWith(' FOUND')) {
    const threat = reply.slice(prefix.length, -' FOUND'.length);
    if (threat.trim() !== '') return { verdict: 'infected', threat };
  }
  switch (reply) {
    case 'COMMAND READ TIMED OUT':
      // clamd waited longer than its ReadTimeout between our chunks.
      return { verdict: 'error', kind: 'timeout', message: 'clamd: COMMAND READ TIMED OUT (the stream was idle longer than clamd ReadTimeout)' };
    case 'COMMAND UNAVAILABLE':
    case 'UNKNOWN COMMAND':
      return { verdict: 'error', kind: 'backend-error', message: `clamd: ${reply} (${command} refused)` };
  }
  return { verdict: 'error', kind: 'backend-error', message: `clamd: unexpected reply ${JSON.stringify(reply.slice(0, 200))}` };
}

/** A VERSION reply: text to put in the backend version, or null when the command is refused. */
export function parseVersionReply(reply: string): string | null {
  const text = reply.trim();
  if (text === '' || text === 'COMMAND UNAVAILABLE' || text === 'UNKNOWN COMMAND' || text.endsWith(' ERROR')) return null;
  // `ClamAV <engine>/<db-version>/<db-date>`; Dr.Web's format is unconfirmed, so keep any text.
  return text.slice(0, 200);
}

/** §1: the reply to PING. */
export function isPong(reply: string): boolean {
  return reply === 'PONG';
}
