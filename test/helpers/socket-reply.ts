/** One request and its reply over a new connection, for readiness probes of test daemons (c-icap, clamd). */
import { connect, type NetConnectOpts } from 'node:net';

export interface ReplyOptions {
  /** Resolve null when no complete reply arrived within this long. */
  timeoutMs: number;
  /** The reply once `text` (everything received so far, as latin1) holds a complete one, else undefined. */
  complete(text: string): string | undefined;
  /** What to resolve when the peer closes before a complete reply (default null). */
  onClose?(text: string): string | null;
}

/** Writes `request` and resolves the reply, or null on a connection error or timeout. Never rejects. */
export function requestReply(target: NetConnectOpts, request: string, options: ReplyOptions): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect(target);
    let text = '';
    const done = (value: string | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => done(null), options.timeoutMs);
    socket.on('error', () => done(null));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const reply = options.complete(text);
      if (reply !== undefined) done(reply);
    });
    socket.on('close', () => done(options.onClose?.(text) ?? null));
    socket.write(request);
  });
}
