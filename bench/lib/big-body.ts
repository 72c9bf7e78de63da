/**
 * One RESPMOD with a very large body (hundreds of MiB to GiB) on its own connection, for the
 * memory and responsiveness scenarios. The body is one clean 1 MiB piece, framed once as a
 * chunk (`100000\r\n` piece `\r\n`) and written again and again: every client of a run shares
 * that one Buffer, so the generator holds about 1 MiB however many clients and bytes there are.
 * Writes respect backpressure (`write() === false` → wait for 'drain'), so the body goes as fast
 * as the server reads it. The answer is read while sending: a server may answer early (an error,
 * or an echo that starts before the end), and then sending stops.
 */
import * as net from 'node:net';

import { FramingError, IcapMessageScanner } from './framing.js';
import { cleanBody } from './scenarios.js';

export const PIECE_BYTES = 1024 * 1024;
const USER_AGENT = 'icap-bridge-bench/0.1';

let framedPiece: Buffer | null = null;

/** The shared chunk: built on first use, then reused by every client. */
function sharedChunk(): Buffer {
  framedPiece ??= Buffer.concat([Buffer.from(`${PIECE_BYTES.toString(16)}\r\n`, 'latin1'), cleanBody(PIECE_BYTES), Buffer.from('\r\n', 'latin1')]);
  return framedPiece;
}

export interface BigRespmodOptions {
  host: string;
  port: number;
  service: string;
  /** Body size: a whole number of MiB. */
  bodyBytes: number;
  /** Aborting destroys the connection; the result then says why. */
  signal: AbortSignal;
  /** Called once the ICAP head is written (the body is "in flight" from then on). */
  onStarted?: () => void;
}

export interface BigRespmodResult {
  /** Final ICAP status, 0 when none arrived. */
  status: number;
  /** Body bytes written to the socket (without chunk framing). */
  bodyBytesSent: number;
  /** First write to the end of the final answer (or to the failure). */
  elapsedMs: number;
  /** Why it ended without a complete answer after the whole body, or null. */
  error: string | null;
}

function requestHead(o: BigRespmodOptions): Buffer {
  const reqHdr = 'GET http://bench.example.test/files/large.bin HTTP/1.1\r\nHost: bench.example.test\r\n\r\n';
  const resHdr = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${o.bodyBytes}\r\n\r\n`;
  return Buffer.from(
    `RESPMOD icap://${o.host}:${o.port}/${o.service} ICAP/1.0\r\n` +
      `Host: ${o.host}:${o.port}\r\n` +
      `User-Agent: ${USER_AGENT}\r\n` +
      'Allow: 204\r\n' +
      `Encapsulated: req-hdr=0, res-hdr=${reqHdr.length}, res-body=${reqHdr.length + resHdr.length}\r\n` +
      '\r\n' +
      reqHdr +
      resHdr,
    'latin1',
  );
}

export function sendBigRespmod(o: BigRespmodOptions): Promise<BigRespmodResult> {
  if (!Number.isInteger(o.bodyBytes / PIECE_BYTES) || o.bodyBytes <= 0) throw new RangeError(`bodyBytes must be a positive multiple of ${PIECE_BYTES}`);
  const chunk = sharedChunk();
  const pieces = o.bodyBytes / PIECE_BYTES;
  return new Promise((resolve) => {
    const started = performance.now();
    let piecesSent = 0;
    let lastChunkWritten = false;
    let status = 0;
    let settled = false;
    const socket = net.connect({ host: o.host, port: o.port });
    socket.setNoDelay(true);

    const finish = (error: string | null): void => {
      if (settled) return;
      settled = true;
      o.signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ status, bodyBytesSent: piecesSent * PIECE_BYTES, elapsedMs: performance.now() - started, error });
    };
    const onAbort = (): void => finish(`aborted after ${piecesSent} MiB sent: ${String(o.signal.reason)}`);
    if (o.signal.aborted) return onAbort();
    o.signal.addEventListener('abort', onAbort, { once: true });

    const scanner = new IcapMessageScanner('response', {
      onMessage: (head) => {
        if (head.status === 100) return; // no preview is sent, but an interim answer is harmless
        status = head.status;
        finish(!lastChunkWritten ? `answered ${head.status} after ${piecesSent} of ${pieces} MiB` : null);
      },
    });
    socket.on('data', (d: Buffer) => {
      try {
        scanner.feed(d);
      } catch (err) {
        finish(err instanceof FramingError ? `bad answer: ${err.message}` : String(err));
      }
    });
    socket.on('error', (err) => finish(`socket error after ${piecesSent} MiB: ${err.message}`));
    socket.on('close', () => finish(`connection closed after ${piecesSent} MiB, no answer`));

    /** Writes pieces until the socket says "full", then carries on at 'drain'. */
    const pump = (): void => {
      while (!settled && piecesSent < pieces) {
        piecesSent++;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      if (!settled && !lastChunkWritten) {
        lastChunkWritten = true;
        socket.write('0\r\n\r\n');
      }
    };
    socket.on('connect', () => {
      socket.write(requestHead(o));
      o.onStarted?.();
      pump();
    });
  });
}
