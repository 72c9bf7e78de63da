/** A raw-socket ICAP client for tests: send bytes, read framed responses, observe the close. */
import { connect, type Socket } from 'node:net';
import { parseResponse, type ParsedResponse } from './icap-response.js';

export class TestClient {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #closed = false;
  #waiters: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, host = '127.0.0.1'): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, noDelay: true }, () => resolve(new TestClient(s)));
      s.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; have ${JSON.stringify(this.#buf.toString('latin1').slice(0, 200))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes received and not yet consumed by read(). */
  get pending(): Buffer {
    return this.#buf;
  }

  write(...bufs: (Buffer | string)[]): void {
    for (const b of bufs) this.socket.write(b);
  }

  /** Reads one complete response (a 100 Continue counts as one). */
  read(timeoutMs = 10_000): Promise<ParsedResponse> {
    return this.#until(
      () => {
        const r = parseResponse(this.#buf);
        if (r === null) {
          if (this.#closed) throw new Error(`connection closed before a complete response; have ${JSON.stringify(this.#buf.toString('latin1').slice(0, 200))}`);
          return undefined;
        }
        this.#buf = this.#buf.subarray(r.length);
        return r;
      },
      timeoutMs,
      'a response',
    );
  }

  /** Resolves when the server has closed the connection. */
  waitClosed(timeoutMs = 10_000): Promise<true> {
    return this.#until(() => (this.#closed ? true : undefined), timeoutMs, 'close');
  }

  close(): void {
    this.socket.destroy();
  }
}
