/**
 * A minimal ICAP responder used to measure the load generator's own ceiling.
 *
 *   node --import tsx bench/trivial-responder.ts [--host 127.0.0.1] [--port 1346] [--pid-file F]
 *
 * It reads each request completely (ICAP head, encapsulated headers, chunked body, framed by
 * bench/lib/framing.ts), answers a preview that did not end in ieof with 100 Continue and reads
 * the rest, then answers with a fixed pre-built response: 204 No Content for REQMOD/RESPMOD
 * (whatever Allow says — this is a ceiling probe, not a conforming server) and a fixed 200 for
 * OPTIONS. Prints "listening HOST:PORT pid=PID" once ready; SIGTERM/SIGINT close it.
 */
import { writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { IcapMessageScanner, type IcapHead } from './lib/framing.js';

const ISTAG = '"trivial-responder-1"';
const NO_CONTENT = Buffer.from(
  `ICAP/1.0 204 No Content\r\nISTag: ${ISTAG}\r\nEncapsulated: null-body=0\r\n\r\n`,
  'latin1',
);
const OPTIONS_OK = Buffer.from(
  'ICAP/1.0 200 OK\r\n' +
    'Methods: REQMOD, RESPMOD\r\n' +
    'Service: icap-bridge trivial responder\r\n' +
    `ISTag: ${ISTAG}\r\n` +
    'Allow: 204\r\n' +
    'Preview: 1024\r\n' +
    'Encapsulated: null-body=0\r\n' +
    '\r\n',
  'latin1',
);
const CONTINUE = Buffer.from('ICAP/1.0 100 Continue\r\n\r\n', 'latin1');
const BAD_REQUEST = Buffer.from(
  `ICAP/1.0 400 Bad Request\r\nISTag: ${ISTAG}\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n`,
  'latin1',
);

export interface TrivialResponder {
  readonly port: number;
  close(): Promise<void>;
}

function handleConnection(socket: net.Socket): void {
  socket.setNoDelay(true);
  let inPreview = false;
  const scanner = new IcapMessageScanner('request', {
    onHead(head: IcapHead) {
      inPreview = head.preview >= 0 && head.hasBody;
    },
    onBodyEnd(ieof: boolean): boolean {
      if (inPreview) {
        inPreview = false;
        // §4.5: never 100 Continue after ieof; otherwise ask for the rest and keep reading.
        if (!ieof) {
          socket.write(CONTINUE);
          return true;
        }
      }
      return false;
    },
    onMessage(head: IcapHead) {
      socket.write(head.method === 'OPTIONS' ? OPTIONS_OK : NO_CONTENT);
    },
  });
  socket.on('data', (d: Buffer) => {
    try {
      scanner.feed(d);
    } catch {
      socket.end(BAD_REQUEST);
    }
  });
  socket.on('error', () => socket.destroy());
}

export function startTrivialResponder(host = '127.0.0.1', port = 0): Promise<TrivialResponder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    handleConnection(s);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 1024 }, () => {
      const addr = server.address() as net.AddressInfo;
      resolve({
        port: addr.port,
        close: () =>
          new Promise<void>((res) => {
            for (const s of sockets) s.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'pid-file': { type: 'string' },
    },
    strict: true,
  });
  const host = values.host ?? '127.0.0.1';
  const responder = await startTrivialResponder(host, Number(values.port ?? 1346));
  if (values['pid-file'] !== undefined) writeFileSync(values['pid-file'], `${process.pid}\n`);
  console.log(`listening ${host}:${responder.port} pid=${process.pid}`);
  const stop = (): void => {
    void responder.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
