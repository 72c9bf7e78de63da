/**
 * `transfer: path` (clamd-config.ts): clamd reads the spooled body from disk (zSCAN <path>)
 * instead of receiving it over the socket, which spares clamd the receive and its own temp file.
 *
 *   scan(body) ─► openScanFile: the spool file, or a private copy of an in-memory body
 *              ─► zSCAN <path> (replayed once elsewhere after a lost connection, like INSTREAM)
 *              ─► clamd could not read it (or there is no file)? ─► INSTREAM from the spool,
 *                 warning once per backend; never a verdict for bytes nobody scanned
 *              ─► the copy removed (finally)
 *
 * Every scan tries the path first, so fixing clamd's permissions takes effect without a restart.
 */
import type { SpooledBody } from '../../pipeline/spooled-body.js';
import type { ScanAttempt } from './instream-scan.js';
import { scanPathCommand } from './protocol.js';
import { openScanFile } from './scan-file.js';

export interface PathTransferDeps {
  readonly backend: string;
  /** spool.directory: where copies of in-memory bodies are written. */
  readonly directory: string;
  /** zSCAN `path` (with its command), replay included. */
  scanFile(path: string, command: Buffer, signal: AbortSignal): Promise<ScanAttempt>;
  /** INSTREAM from the spool, replay included. */
  scanBytes(body: SpooledBody, signal: AbortSignal): Promise<ScanAttempt>;
  /** Told once per backend, on the first fallback to INSTREAM. */
  warn(message: string): void;
}

/** Counters an operator (or a test) can read: how often the path did not work, and why last. */
export interface PathTransferStatus {
  readonly mode: 'instream' | 'path';
  /** Scans by path that clamd answered. */
  readonly scannedByPath: number;
  /** Scans that went by INSTREAM instead. */
  readonly fallbacks: number;
  readonly lastFallbackReason: string | null;
}

export class PathTransfer {
  readonly #deps: PathTransferDeps;
  #warned = false;
  #scannedByPath = 0;
  #fallbacks = 0;
  #lastFallbackReason: string | null = null;

  constructor(deps: PathTransferDeps) {
    this.#deps = deps;
  }

  get status(): PathTransferStatus {
    return { mode: 'path', scannedByPath: this.#scannedByPath, fallbacks: this.#fallbacks, lastFallbackReason: this.#lastFallbackReason };
  }

  async scan(body: SpooledBody, signal: AbortSignal): Promise<ScanAttempt> {
    const opened = await openScanFile(body, this.#deps.directory, signal);
    let reason: string;
    if (opened.ok) {
      try {
        const command = scanPathCommand(opened.file.path);
        if (command === null) {
          reason = `path ${JSON.stringify(opened.file.path)} cannot be sent in a clamd command`;
        } else {
          const attempt = await this.#deps.scanFile(opened.file.path, command, signal);
          if (attempt.refused === null) {
            if (attempt.result.outcome !== 'error') this.#scannedByPath++;
            return attempt;
          }
          reason = attempt.refused;
        }
      } finally {
        await opened.file.dispose();
      }
    } else {
      reason = opened.reason;
    }
    // An abort is not the path's fault: INSTREAM ends at once as aborted, with no warning.
    if (!signal.aborted) this.#fellBack(reason);
    return this.#deps.scanBytes(body, signal);
  }

  #fellBack(reason: string): void {
    this.#fallbacks++;
    this.#lastFallbackReason = reason;
    if (this.#warned) return;
    this.#warned = true;
    this.#deps.warn(
      `backend ${this.#deps.backend}: transfer: path — clamd did not read the body file (${reason}); ` +
        'sending bodies by INSTREAM instead when that happens. Check that clamd runs on this host and can read spool.directory.',
    );
  }
}
