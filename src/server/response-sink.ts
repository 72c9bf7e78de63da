/**
 * Writes response bytes to the connection's socket and respects backpressure (STYLE.md
 * "Respect write() === false"): a caller awaiting write() never has more than one socket
 * buffer's worth of response queued.
 *
 * A write that has to wait is watched (SendWatch): a client that takes none of the answer for
 * server.timeouts.write_idle_ms (it stopped reading, but keeps the connection open) would otherwise
 * hold the transaction, its temp file and the connection for ever. Progress is a 'drain': the
 * socket handed everything queued to the kernel, which needs the client to read about one piece
 * (a body is echoed 64 KiB at a time) within the limit.
 */
import type { Socket } from 'node:net';
import { CodedError } from '../errors.js';
import { corkUntilEndOfTurn, worthCoalescing } from './write-coalescer.js';

const CONNECTION_CLOSE = Buffer.from('Connection: close\r\n', 'latin1');

/**
 * A response head with `Connection: close` after its status line. Every answer's first write
 * starts with its ICAP status line, and Encapsulated offsets count from the end of the ICAP
 * headers, so one more ICAP header line moves nothing they point at.
 */
function withConnectionClose(first: Buffer): Buffer {
  const lineEnd = first.indexOf('\r\n');
  if (lineEnd < 0) return first;
  return Buffer.concat([first.subarray(0, lineEnd + 2), CONNECTION_CLOSE, first.subarray(lineEnd + 2)]);
}

/** What the sink does about a client that stopped taking the answer. */
export interface SendWatch {
  /** How long a write may wait (read at each wait, so a reload applies to the next one). */
  idleMs(): number;
  /** The client took nothing for idleMs: the connection cuts the answer. */
  onStalled(idleMs: number): void;
}

export class ResponseSink {
  readonly #socket: Socket;
  readonly #watch: SendWatch | null;
  /** Armed while a write waits for 'drain'. */
  #stallTimer: NodeJS.Timeout | null = null;
  /** True once any byte of the current response was written: errors can then no longer be answered. */
  started = false;
  /**
   * The current response is the connection's last (server.max_requests_per_connection): its head
   * gets `Connection: close` (RFC 3507 §4.3.1 takes HTTP's Connection header; RFC 9112 §9.6), so
   * the client does not send another request on a connection about to close.
   */
  lastOnConnection = false;

  constructor(socket: Socket, watch: SendWatch | null = null) {
    this.#socket = socket;
    this.#watch = watch;
  }

  get closed(): boolean {
    return this.#socket.destroyed || !this.#socket.writable;
  }

  /** Cuts the connection at once: a started response ends without its last chunk. */
  destroy(): void {
    this.#socket.destroy();
  }

  /** Writes the buffers in one go; resolves when the socket can take more. Rejects if it closed. */
  async write(...buffers: Buffer[]): Promise<void> {
    await this.writeNow(...buffers);
  }

  /**
   * write() without a promise in the common case: null when the socket took everything, else a
   * promise of 'drain'. Throws (synchronously) if the connection closed. An answer written this way
   * costs no turn of the microtask queue.
   */
  writeNow(...buffers: Buffer[]): Promise<void> | null {
    const socket = this.#socket;
    if (this.closed) throw new CodedError('ICAP_ERR_CLIENT_GONE', 'connection closed');
    if (!this.started && this.lastOnConnection) buffers[0] = withConnectionClose(buffers[0]!);
    this.started = true;
    let ok = true;
    if (worthCoalescing()) {
      // Sent at the end of this loop turn, together with the other connections' responses.
      corkUntilEndOfTurn(socket);
      for (const b of buffers) ok = socket.write(b);
    } else {
      // cork/uncork turns several buffers into one writev(2).
      socket.cork();
      for (const b of buffers) ok = socket.write(b);
      socket.uncork();
    }
    if (ok) return null;
    this.#watchStall();
    return new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        socket.off('close', onClose);
        this.#unwatchStall();
        resolve();
      };
      const onClose = (): void => {
        socket.off('drain', onDrain);
        this.#unwatchStall();
        reject(new CodedError('ICAP_ERR_CLIENT_GONE', 'connection closed while writing'));
      };
      socket.once('drain', onDrain);
      socket.once('close', onClose);
    });
  }

  /** Starts the clock at the first write that waits; a 'drain' stops it (the next wait starts anew). */
  #watchStall(): void {
    const watch = this.#watch;
    if (watch === null || this.#stallTimer !== null) return;
    const idleMs = watch.idleMs();
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = null;
      if (!this.#socket.destroyed && this.#socket.writableNeedDrain) watch.onStalled(idleMs);
    }, idleMs);
    this.#stallTimer.unref();
  }

  #unwatchStall(): void {
    if (this.#stallTimer === null) return;
    clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
  }
}
