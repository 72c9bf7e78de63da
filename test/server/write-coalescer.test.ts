import { once } from 'node:events';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectionClosed, connectionOpened, corkUntilEndOfTurn, worthCoalescing } from '../../src/server/write-coalescer.js';

/** A loopback pair: `server` is the accepted side, `client` reads what it sends. */
async function socketPair(): Promise<{ server: net.Socket; client: net.Socket; close: () => void }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as net.AddressInfo;
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(port, '127.0.0.1');
  const [server] = await accepted;
  return {
    server,
    client,
    close: () => {
      server.destroy();
      client.destroy();
      listener.close();
    },
  };
}

const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length > 0) closers.pop()!();
});

describe('corkUntilEndOfTurn', () => {
  it('holds the writes of this turn and sends them in order once the turn ends', async () => {
    const a = await socketPair();
    const b = await socketPair();
    closers.push(a.close, b.close);
    corkUntilEndOfTurn(a.server);
    corkUntilEndOfTurn(a.server); // a second call in the same turn corks nothing more
    a.server.write('one ');
    corkUntilEndOfTurn(b.server);
    b.server.write('other');
    a.server.write('two');
    expect(a.server.writableCorked).toBe(1);
    expect(b.server.writableCorked).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(a.server.writableCorked).toBe(0);
    expect(b.server.writableCorked).toBe(0);
    const [chunk] = (await once(a.client, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('one two');
    const [other] = (await once(b.client, 'data')) as [Buffer];
    expect(other.toString()).toBe('other');
  });

  it('leaves a socket ended or destroyed during the turn alone', async () => {
    const a = await socketPair();
    const b = await socketPair();
    closers.push(a.close, b.close);
    corkUntilEndOfTurn(a.server);
    a.server.end('last words');
    corkUntilEndOfTurn(b.server);
    b.server.write('never sent');
    b.server.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    const received: Buffer[] = [];
    a.client.on('data', (c: Buffer) => received.push(c));
    await once(a.client, 'end');
    expect(Buffer.concat(received).toString()).toBe('last words');
    expect(b.server.destroyed).toBe(true);
  });

  it('keeps backpressure: write() says false past the high-water mark while corked', async () => {
    const a = await socketPair();
    closers.push(a.close);
    corkUntilEndOfTurn(a.server);
    const big = Buffer.alloc(a.server.writableHighWaterMark + 1);
    expect(a.server.write(big)).toBe(false);
    await once(a.server, 'drain');
    expect(a.server.writableCorked).toBe(0);
  });
});

describe('worthCoalescing', () => {
  it('holds writes only while more than one client connection is open', () => {
    const before = worthCoalescing();
    // Whatever other test files left open, bring the count to a known level relative to now.
    connectionOpened();
    connectionOpened();
    expect(worthCoalescing()).toBe(true);
    connectionClosed();
    connectionClosed();
    expect(worthCoalescing()).toBe(before);
  });
});
