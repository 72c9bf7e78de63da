/**
 * Writes response bytes to the connection's socket and respects backpressure (STYLE.md
 * "Respect write() === false"): a caller awaiting write() never has more than one socket
 * buffer's worth of response queued.
 */
import type { Socket } from 'node:net';
import { CodedError } from '../errors.js';
import { corkUntilEndOfTurn, worthCoalescing } from './write-coalescer.js';

export class ResponseSink {
  readonly #socket: Socket;
  /** True once any byte of the current response was written: errors can then no longer be answered. */
  started = false;

  constructor(socket: Socket) {
    this.#socket = socket;
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
    return new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        socket.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        socket.off('drain', onDrain);
        reject(new CodedError('ICAP_ERR_CLIENT_GONE', 'connection closed while writing'));
      };
      socket.once('drain', onDrain);
      socket.once('close', onClose);
    });
  }
}
