/**
 * Sockets to clamd: one connection per command (no IDSESSION, spec §4 "simpler alternative"),
 * and the one-shot commands the health checks use (PING, VERSION).
 */
import { connect, type Socket } from 'node:net';
import type { ClamdAddress } from './endpoint.js';
import { ReplyReader } from './protocol.js';

export function connectSocket(address: ClamdAddress): Socket {
  const socket = address.kind === 'unix' ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
  // INSTREAM ends with a 4-byte terminator followed by a wait for the verdict: never let Nagle hold it.
  socket.setNoDelay(true);
  return socket;
}

/** Why a connection was never established, for messages: `ECONNREFUSED`, `ENOENT`, … */
export function describeSocketError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * One command's fate:
 *  - `reply`: clamd answered (text without terminator);
 *  - `unreachable`: no connection (refused, no such socket, connect timeout);
 *  - `silent`: connected, but no reply within the bound — clamd stopped calling accept() because
 *    its queue is full (spec §5, MaxQueue): the kernel completes the handshake, nobody reads;
 *  - `closed`: connected, then closed (or reset) without a reply.
 */
export type CommandOutcome =
  | { readonly kind: 'reply'; readonly text: string }
  | { readonly kind: 'unreachable'; readonly message: string }
  | { readonly kind: 'silent'; readonly message: string }
  | { readonly kind: 'closed'; readonly message: string };

export interface CommandTimeouts {
  readonly connectTimeoutMs: number;
  /** After the connection is established. */
  readonly replyTimeoutMs: number;
}

/** Sends one `z` command on a fresh connection and reads its single reply. Never rejects; `signal` ends it early as 'unreachable'. */
export function runCommand(address: ClamdAddress, command: Buffer, timeouts: CommandTimeouts, signal?: AbortSignal): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve({ kind: 'unreachable', message: `${address.label}: command aborted` });
      return;
    }
    const socket = connectSocket(address);
    const reader = new ReplyReader();
    let connected = false;
    let settled = false;
    const onAbort = (): void => finish({ kind: 'unreachable', message: `${address.label}: command aborted` });
    const finish = (outcome: CommandOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(outcome);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let timer = setTimeout(
      () => finish({ kind: 'unreachable', message: `connect to ${address.label} timed out after ${timeouts.connectTimeoutMs} ms` }),
      timeouts.connectTimeoutMs,
    );
    socket.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      timer = setTimeout(
        () => finish({ kind: 'silent', message: `${address.label} accepted the connection but sent no reply within ${timeouts.replyTimeoutMs} ms` }),
        timeouts.replyTimeoutMs,
      );
      socket.write(command);
    });
    socket.on('data', (data: Buffer) => {
      if (reader.push(data)) finish({ kind: 'reply', text: reader.text! });
      else if (reader.state === 'overflow') finish({ kind: 'closed', message: `${address.label} sent an oversized reply` });
    });
    socket.on('error', (err) => {
      if (!connected) finish({ kind: 'unreachable', message: `cannot connect to ${address.label}: ${describeSocketError(err)}` });
      // Connected: wait for 'close', a reply may still be readable.
    });
    socket.on('close', () => {
      if (reader.partial !== '') finish({ kind: 'reply', text: reader.partial });
      else if (!connected) finish({ kind: 'unreachable', message: `cannot connect to ${address.label}` });
      else finish({ kind: 'closed', message: `${address.label} closed the connection without a reply` });
    });
  });
}
