/**
 * One connection to an upstream ICAP server: the socket (TCP or TLS) and the response decoder.
 * An exchange binds a listener for its duration; between exchanges the connection sits idle in
 * its endpoint's pool, where any byte or close makes it unusable (a server may close an idle
 * connection at any time; a byte nobody asked for means the framing is lost).
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { IcapResponseDecoder, type ResponseDecoderEvent } from '../../../protocol/index.js';
import type { ScanErrorKind } from '../backend.js';

export interface ConnectionListener {
  onEvent(event: ResponseDecoderEvent): void;
  /** The connection failed (closed, reset, undecodable bytes); called at most once. */
  onFailure(message: string): void;
}

export class IcapConnection {
  readonly #socket: Socket;
  readonly #decoder: IcapResponseDecoder;
  #listener: ConnectionListener | null = null;
  #dead: string | null = null;
  /** Exchanges completed on it, for logs and tests. */
  exchanges = 0;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#decoder = new IcapResponseDecoder((e) => this.#listener?.onEvent(e));
    socket.on('data', (data: Buffer) => this.#onData(data));
    socket.on('error', (err) => this.#fail(describeSocketError(err)));
    socket.on('close', () => this.#fail('the upstream closed the connection'));
    socket.on('drain', () => {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w();
    });
  }

  #drainWaiters: (() => void)[] = [];

  /** Usable for another exchange: alive, nothing buffered, nobody bound. */
  get reusable(): boolean {
    return this.#dead === null && this.#listener === null && this.#decoder.idle && !this.#socket.destroyed && this.#socket.writable;
  }

  get dead(): boolean {
    return this.#dead !== null;
  }

  bind(listener: ConnectionListener): void {
    if (this.#listener !== null) throw new Error('IcapConnection already bound');
    this.#listener = listener;
    if (this.#dead !== null) listener.onFailure(this.#dead);
  }

  unbind(): void {
    this.#listener = null;
  }

  /** Writes bytes; false when the caller should wait for drained() before writing more. */
  write(...bufs: Buffer[]): boolean {
    if (this.#dead !== null) return true;
    if (bufs.length > 1) this.#socket.cork();
    let ok = true;
    for (const b of bufs) ok = this.#socket.write(b) && ok;
    if (bufs.length > 1) this.#socket.uncork();
    return ok && !this.#socket.writableNeedDrain;
  }

  /** Resolves once the socket has drained, or the connection died. */
  drained(): Promise<void> {
    if (this.#dead !== null || !this.#socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  destroy(): void {
    this.#fail('connection closed by the bridge');
    this.#socket.destroy();
  }

  /** Stops the process from waiting on an idle connection. */
  setIdle(idle: boolean): void {
    if (idle) this.#socket.unref();
    else this.#socket.ref();
  }

  #onData(data: Buffer): void {
    if (this.#dead !== null) return;
    if (this.#listener === null) {
      // Idle: nothing was asked, so any byte is out of frame. Never reuse it.
      this.#fail('unsolicited bytes on an idle connection');
      this.#socket.destroy();
      return;
    }
    try {
      this.#decoder.push(data);
    } catch (err) {
      this.#fail(`undecodable answer: ${err instanceof Error ? err.message : String(err)}`);
      this.#socket.destroy();
    }
  }

  #fail(message: string): void {
    if (this.#dead !== null) return;
    this.#dead = message;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
    this.#listener?.onFailure(message);
  }
}

export interface ConnectTarget {
  /** Where to connect: an IP literal or host name. */
  readonly address: string;
  readonly port: number;
  /** The configured host name, for the TLS server name. */
  readonly hostName: string;
  readonly tls: { readonly ca?: Buffer | undefined; readonly rejectUnauthorized: boolean } | null;
}

export class ConnectError extends Error {
  readonly kind: Extract<ScanErrorKind, 'unreachable' | 'timeout'>;
  /** The endpoint refused outright (nothing listens): eject it at once. */
  readonly refused: boolean;
  constructor(kind: Extract<ScanErrorKind, 'unreachable' | 'timeout'>, message: string, refused = false) {
    super(message);
    this.name = 'ConnectError';
    this.kind = kind;
    this.refused = refused;
  }
}

/** Opens a connection (TLS handshake included); rejects with ConnectError. */
export function openConnection(target: ConnectTarget, timeoutMs: number, signal: AbortSignal): Promise<IcapConnection> {
  const label = `${target.address}:${target.port}`;
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new ConnectError('timeout', `not connecting to ${label}: ${reasonText(signal.reason)}`));
      return;
    }
    const socket =
      target.tls === null
        ? netConnect({ host: target.address, port: target.port })
        : tlsConnect({
            host: target.address,
            port: target.port,
            // SNI takes names only; an IP literal is checked against the certificate's IP SANs.
            ...(isIP(target.hostName) === 0 && { servername: target.hostName }),
            ...(target.tls.ca !== undefined && { ca: target.tls.ca }),
            rejectUnauthorized: target.tls.rejectUnauthorized,
          });
    socket.setNoDelay(true);
    const finish = (err: ConnectError | null): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
      if (err === null) {
        resolve(new IcapConnection(socket));
      } else {
        socket.destroy();
        reject(err);
      }
    };
    const onError = (err: Error): void => {
      const code = (err as NodeJS.ErrnoException).code;
      finish(new ConnectError('unreachable', `cannot connect to ${label}: ${describeSocketError(err)}`, code === 'ECONNREFUSED'));
    };
    const onAbort = (): void => finish(new ConnectError('timeout', `connecting to ${label} stopped: ${reasonText(signal.reason)}`));
    const timer = setTimeout(() => finish(new ConnectError('timeout', `connect to ${label} timed out after ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', onError);
    socket.once(target.tls === null ? 'connect' : 'secureConnect', () => finish(null));
  });
}

export function describeSocketError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
}

function reasonText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
