/**
 * Squid 5.7's bug 5550 (README, Squid; transaction.ts LAST_CHUNK_PAUSE_MS): a RESPMOD answer that
 * carries a body of 64 KiB or more without a Content-Length waits ~20 ms between its last data and
 * its last chunk, so that Squid has stored the body before it learns that the ICAP body ended.
 * Without the pause, 30 of 2,561 such downloads through Squid lost their final chunk.
 *
 * The gap is measured in the server (ResponseSink.write spied on), from the last data write being
 * taken by the socket to the last chunk's write: at least the pause for a chunked body of 64 KiB or
 * more, and short for a body with a Content-Length or under 64 KiB.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ResponseSink } from '../../src/server/response-sink.js';
import { httpResponseHead, respmodHead } from '../helpers/icap-messages.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const LAST_CHUNK = '\r\n0\r\n\r\n';
/** '~': in no header of the answer, so counting it counts body bytes. */
const BODY_BYTE = 0x7e;

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv.close());
afterEach(() => {
  vi.restoreAllMocks();
});

interface Write {
  /** performance.now() when the server asked to write, and when the socket had taken it. */
  at: number;
  done: number;
  lastChunk: boolean;
}

/**
 * The server's writes of its answer: the gap is measured where it is made (from one write being
 * taken to the next being asked for), since a client's own pauses could hide or shorten it.
 */
function recordWrites(): Write[] {
  const writes: Write[] = [];
  const original = ResponseSink.prototype.write;
  vi.spyOn(ResponseSink.prototype, 'write').mockImplementation(function (this: ResponseSink, ...buffers: Buffer[]) {
    const w: Write = { at: performance.now(), done: Infinity, lastChunk: buffers.some((b) => b.toString('latin1').startsWith('0\r\n')) };
    writes.push(w);
    return original.apply(this, buffers).then(() => void (w.done = performance.now()));
  });
  return writes;
}

/** ms from the last data write being taken to the last chunk being written. */
function lastChunkGap(writes: Write[]): number {
  const last = writes.findIndex((w) => w.lastChunk);
  expect(last).toBeGreaterThan(0);
  return writes[last]!.at - writes[last - 1]!.done;
}

interface Arrival {
  /** The answer's first bytes. */
  head: string;
  /** Bytes of the body (BODY_BYTE) received. */
  bodyBytesSeen: number;
}

/** A clean RESPMOD without Allow: 204 (so the body is echoed), chunked by the origin unless contentLength is given. */
function echo(bodyBytes: number, contentLength: boolean): Promise<Arrival> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ port: srv.port, host: '127.0.0.1' }, () => {
      const resHdr = contentLength ? httpResponseHead(bodyBytes) : httpResponseHead(undefined, 'Transfer-Encoding: chunked\r\n');
      socket.write(respmodHead('http://example.com/page.html', resHdr));
      socket.write(Buffer.concat([Buffer.from(`${bodyBytes.toString(16)}\r\n`), Buffer.alloc(bodyBytes, BODY_BYTE), Buffer.from(LAST_CHUNK)]));
    });
    let head = '';
    let tail = '';
    let bodyBytesSeen = 0;
    socket.on('data', (d: Buffer) => {
      if (head.length < 64) head += d.toString('latin1', 0, 64);
      tail = (tail + d.toString('latin1', Math.max(0, d.length - 16))).slice(-16);
      for (const byte of d) if (byte === BODY_BYTE) bodyBytesSeen++;
      if (tail.endsWith(LAST_CHUNK)) {
        socket.destroy();
        resolve({ head, bodyBytesSeen });
      }
    });
    socket.on('error', reject);
    setTimeout(() => reject(new Error(`no complete answer; have ${bodyBytesSeen} body bytes`)), 10_000).unref();
  });
}

describe('the last chunk of a large echoed body without a Content-Length (Squid bug 5550)', () => {
  it('is written 20 ms after the last data', async () => {
    const writes = recordWrites();
    const r = await echo(200 * 1024, false);
    expect(r.head.startsWith('ICAP/1.0 200')).toBe(true);
    expect(r.bodyBytesSeen).toBe(200 * 1024);
    expect(lastChunkGap(writes)).toBeGreaterThanOrEqual(19);
  });

  it.each([
    ['with a Content-Length', 200 * 1024, true],
    ['under 64 KiB', 60 * 1024, false],
  ])('%s: written at once', async (_name, bytes, contentLength) => {
    const writes = recordWrites();
    const r = await echo(bytes, contentLength);
    expect(r.head.startsWith('ICAP/1.0 200')).toBe(true);
    expect(r.bodyBytesSeen).toBe(bytes);
    // No pause: the last chunk follows the data at once (a few turns of the loop at most).
    expect(lastChunkGap(writes)).toBeLessThan(19);
  });
});
