/**
 * Trickle delivery of large RESPMOD bodies (services.NAME.trickle). A download of hundreds of
 * megabytes should not wait for its whole body to arrive and be scanned before the first byte
 * reaches the browser. Once a body reaches min_body_bytes (or its Content-Length says it will),
 * the transaction starts its 200 answer (the original HTTP head, Content-Length kept) and this
 * forwarder sends body bytes as they arrive, always keeping the last hold_back_bytes back:
 *
 *   socket ─► spool (memory, then temp file) ─► forwarder ─► [0, size − hold_back) ─► client
 *                                                            the tail waits for the verdict
 *
 * At the verdict the transaction takes over: clean → the tail and the last chunk; anything else
 * → the answer is cut without the tail (cut_after_commit: short of its Content-Length, or a close
 * without the last chunk), so the client never gets a complete file (as after a commit on idle;
 * logged `blocked-by-truncation`).
 *
 * Bytes are read back from the spool, not kept: input runs at the sender's pace into the spool,
 * output at the receiver's pace (ResponseSink resolves a write only when the socket can take
 * more), and memory holds one read chunk at a time whatever the two paces are.
 *
 * Precedence with commit on idle (specs/squid-interop.md, Recipe 1): both start the same early
 * 200 answer, whichever comes first. Once trickling, an idle kick lets one more byte past the
 * hold-back line (kick()), within commit_on_idle.max_bytes: Debian's Squid 5.7 can stall before
 * the first hold_back_bytes have arrived, and only adapted bytes wake it.
 */
import type { Readable } from 'node:stream';
import { CRLF, chunkHeader, type HttpHead } from '../../protocol/index.js';

export interface TrickleSettings {
  readonly minBodyBytes: number;
  readonly holdBackBytes: number;
}

/** The service's trickle settings, or null when it is off. */
export function trickleSettings(config: { enabled: boolean; min_body_bytes: number; hold_back_bytes: number }): TrickleSettings | null {
  return config.enabled ? { minBodyBytes: config.min_body_bytes, holdBackBytes: config.hold_back_bytes } : null;
}

/** Content-Length of an encapsulated HTTP head when it is one plain decimal number, else null. */
export function declaredLength(head: HttpHead | null): number | null {
  const values = head?.headers.getAll('Content-Length') ?? [];
  if (values.length !== 1 || !/^\d{1,15}$/.test(values[0]!.trim())) return null;
  return Number(values[0]!.trim());
}

/** A body this large, seen or announced, is trickled. */
export function reachesTrickle(settings: TrickleSettings, received: number, declared: number | null): boolean {
  return received >= settings.minBodyBytes || (declared !== null && declared >= settings.minBodyBytes);
}

/** What the forwarder reads: BodySpool while the body is still arriving. */
export interface TrickleSource {
  /** Bytes received so far; the hold-back counts back from here. */
  readonly size: number;
  /** Leading bytes that can be read now (on disk: those already written to the temp file). */
  readonly readableBytes: number;
  createEarlyReadStream(start: number, end: number): Readable;
}

export interface TrickleInit {
  readonly source: TrickleSource;
  readonly holdBackBytes: number;
  /** Body bytes the client already has (commit-on-idle kicks before trickling started). */
  readonly startAt: number;
  /** Writes to the client; resolves when the socket can take more, rejects when it closed. */
  readonly write: (...buffers: Buffer[]) => Promise<void>;
}

/** How soon to look again when bytes that may go out are not in the temp file yet. */
const RETRY_MS = 10;

export class TrickleForwarder {
  readonly #source: TrickleSource;
  readonly #holdBack: number;
  readonly #write: TrickleInit['write'];
  #forwarded: number;
  /** Where the last idle kick moved the limit: one byte past what was forwarded then. */
  #kickLimit = 0;
  #began = false;
  #stopped = false;
  /** pump() was called since the loop last looked: look again before going idle. */
  #wanted = false;
  #loop: Promise<void> | null = null;
  #retry: NodeJS.Timeout | null = null;

  constructor(init: TrickleInit) {
    this.#source = init.source;
    this.#holdBack = init.holdBackBytes;
    this.#write = init.write;
    this.#forwarded = init.startAt;
  }

  /** Body bytes written to the client (as chunks) so far. */
  get forwarded(): number {
    return this.#forwarded;
  }

  /** Bytes that may go out before the verdict: all but the last hold_back_bytes, or a kick's byte. */
  get limit(): number {
    const size = this.#source.size;
    return Math.min(size, Math.max(0, size - this.#holdBack, this.#kickLimit));
  }

  /** The answer's head is out: chunks may follow it now. */
  begin(): void {
    this.#began = true;
    this.pump();
  }

  /**
   * The body went silent (commit on idle): let one more byte past the hold-back line. False when
   * that did nothing: bytes are still on their way out, or every byte received already may go.
   */
  kick(): boolean {
    const nothingToDo = this.#forwarded < this.limit || this.#forwarded >= this.#source.size;
    if (this.#stopped || nothingToDo) {
      this.pump();
      return false;
    }
    this.#kickLimit = this.#forwarded + 1;
    this.pump();
    return true;
  }

  /** New bytes arrived (or may be on disk now): forward what the limit allows. Never blocks. */
  pump(): void {
    this.#wanted = true;
    if (!this.#began || this.#stopped || this.#loop !== null) return;
    this.#loop = this.#forward()
      .catch(() => {
        // The client went away (the transaction sees it too) or the spool was disposed under us.
        this.#stopped = true;
      })
      .finally(() => {
        this.#loop = null;
        if (this.#wanted && !this.#stopped) this.pump();
      });
  }

  /** No more chunks; resolves once no write is in flight, so the caller may write next. */
  stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    return this.#loop ?? Promise.resolve();
  }

  async #forward(): Promise<void> {
    while (!this.#stopped) {
      this.#wanted = false;
      const limit = this.limit;
      const end = Math.min(limit, this.#source.readableBytes);
      if (end <= this.#forwarded) {
        // Allowed bytes still in the temp file's write buffer: no body byte may come to wake us.
        if (limit > this.#forwarded) this.#scheduleRetry();
        return;
      }
      await this.#send(this.#forwarded, end);
    }
  }

  async #send(start: number, end: number): Promise<void> {
    const stream = this.#source.createEarlyReadStream(start, end);
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (this.#stopped) return;
        await this.#write(chunkHeader(chunk.length), chunk, CRLF);
        this.#forwarded += chunk.length;
      }
    } finally {
      stream.destroy();
    }
  }

  #scheduleRetry(): void {
    if (this.#retry !== null || this.#stopped) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.pump();
    }, RETRY_MS);
    this.#retry.unref();
  }
}
