/**
 * A scripted upstream ICAP server on 127.0.0.1 for the icap backend's unit tests: it decodes
 * requests with the project's own request decoder, records what it received (heads, preview,
 * body, connection), and answers as each test's script says — 100 Continue or a final answer
 * after the preview, an answer at the end, a half answer and a reset, or silence.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { IcapDecoder, type HeaderList } from '../../protocol/index.js';

export interface FakeRequest {
  readonly method: string;
  readonly uri: string;
  readonly headers: HeaderList;
  readonly raw: string;
  /** Encapsulated HTTP heads, raw. */
  readonly httpHeads: string[];
  /** Preview bytes, then (after 100 Continue) the rest. */
  body: Buffer;
  previewBytes: number | null;
  ieof: boolean;
  continued: boolean;
  complete: boolean;
  /** 1-based number of the connection it came on. */
  readonly connection: number;
}

/** What to do: bytes to send, close (FIN), reset (RST), or stay silent. */
export type Action = Buffer | string | { readonly partial: string } | 'close' | 'reset' | 'hang';

export interface Script {
  /** The OPTIONS answer; default: {@link optionsAnswer}(). */
  options?: (req: FakeRequest) => Action;
  /** After a preview without ieof: 'continue' (default) or a final action. */
  preview?: (req: FakeRequest) => 'continue' | Action | Promise<'continue' | Action>;
  /** Once the body is complete; default 204. */
  final?: (req: FakeRequest) => Action;
  /** Right after the request head, before any body (early answers, errata e7); the server then stops reading. */
  onHead?: (req: FakeRequest) => Action | null;
  /**
   * Like c-icap's virus_scan (errata e7): a RESPMOD's 200 head goes out as soon as the body is
   * wanted (after 100 Continue, or at once without a preview), each body piece is echoed as a
   * chunk as it arrives, and the answer ends only when the request has.
   */
  echoWhileReading?: boolean;
}

export const ISTAG = '"FAKE-1"';

export function optionsAnswer(extra: Record<string, string> = {}, istag = ISTAG): string {
  const headers: Record<string, string> = { Methods: 'RESPMOD, REQMOD', ISTag: istag, Preview: '10', Allow: '204', 'Transfer-Preview': '*', ...extra };
  const lines = Object.entries(headers)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `ICAP/1.0 200 OK\r\n${lines}Encapsulated: null-body=0\r\n\r\n`;
}

export const NO_CONTENT = `ICAP/1.0 204 No Content\r\nISTag: ${ISTAG}\r\nEncapsulated: null-body=0\r\n\r\n`;

/** A 200 with an encapsulated block page and the given extra ICAP headers. */
export function blockAnswer(icapHeaders: string, status = 200): string {
  const head = 'HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n\r\n';
  const page = '<html>blocked</html>';
  return `ICAP/1.0 ${status} OK\r\nISTag: ${ISTAG}\r\n${icapHeaders}Encapsulated: res-hdr=0, res-body=${head.length}\r\n\r\n${head}${page.length.toString(16)}\r\n${page}\r\n0\r\n\r\n`;
}

/** A 200 echoing `resHead` and `body` (RESPMOD). */
export function echoAnswer(resHead: string, body: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`ICAP/1.0 200 OK\r\nISTag: ${ISTAG}\r\nEncapsulated: res-hdr=0, res-body=${resHead.length}\r\n\r\n${resHead}`, 'latin1'),
    ...(body.length > 0 ? [Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')] : []),
    Buffer.from('0\r\n\r\n'),
  ]);
}

export interface FakeUpstream {
  readonly port: number;
  readonly requests: FakeRequest[];
  /** Connections accepted so far. */
  connections(): number;
  /** `icap://127.0.0.1:PORT/service`, or `icaps://` for a TLS upstream. */
  url(service?: string): string;
  /** Sockets currently open. */
  readonly sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function startFakeUpstream(script: Script = {}, tls?: { readonly cert: Buffer; readonly key: Buffer }): Promise<FakeUpstream> {
  const requests: FakeRequest[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const onConnection = (socket: Socket): void => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let current: FakeRequest | null = null;
    let echoing = false;
    const echoPiece = (data: Buffer): void => {
      if (data.length > 0) socket.write(Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]));
    };
    const startEcho = (req: FakeRequest): void => {
      const resHead = req.httpHeads[1] ?? '';
      socket.write(`ICAP/1.0 200 OK\r\nISTag: ${ISTAG}\r\nEncapsulated: res-hdr=0, res-body=${resHead.length}\r\n\r\n${resHead}`);
      echoing = true;
      echoPiece(req.body);
    };
    const act = (action: Action): void => {
      if (action === 'hang') return;
      if (action === 'close') socket.end();
      else if (action === 'reset') socket.resetAndDestroy();
      else if (typeof action === 'object' && 'partial' in action) {
        socket.write(action.partial, () => socket.resetAndDestroy());
      } else socket.write(action);
    };
    const decoder: IcapDecoder = new IcapDecoder((e) => {
      switch (e.type) {
        case 'request-head': {
          current = {
            method: e.head.method,
            uri: e.head.uri,
            headers: e.head.headers,
            raw: e.head.raw.toString('latin1'),
            httpHeads: [],
            body: Buffer.alloc(0),
            previewBytes: e.head.preview,
            ieof: false,
            continued: false,
            complete: false,
            connection,
          };
          requests.push(current);
          if (e.head.method !== 'OPTIONS') {
            const early = script.onHead?.(current);
            if (early !== undefined && early !== null) {
              // Answered already: read no more of this request, like a server that stops caring.
              act(early);
              socket.pause();
            }
          }
          return;
        }
        case 'http-head':
          current?.httpHeads.push(e.head.raw.toString('latin1'));
          return;
        case 'headers-end':
          // No preview: the whole body is wanted at once.
          if (script.echoWhileReading === true && current?.method === 'RESPMOD' && current.previewBytes === null && e.body !== null) startEcho(current);
          return;
        case 'body':
          if (current) current.body = Buffer.concat([current.body, e.data]);
          if (echoing) echoPiece(e.data);
          return;
        case 'preview-end': {
          const req = current!;
          req.ieof = e.ieof;
          if (e.ieof) return;
          void Promise.resolve(script.preview?.(req) ?? 'continue').then((answer) => {
            if (answer === 'continue') {
              req.continued = true;
              socket.write('ICAP/1.0 100 Continue\r\n\r\n');
              if (script.echoWhileReading === true && req.method === 'RESPMOD') startEcho(req);
              decoder.continueBody();
            } else {
              decoder.skipBody();
              act(answer);
            }
          });
          return;
        }
        case 'message-end': {
          const req = current!;
          if (req.method === 'OPTIONS') {
            act(script.options?.(req) ?? optionsAnswer());
            return;
          }
          // A final answer already went out after the preview (skipBody): nothing more to say.
          if (req.previewBytes !== null && !req.ieof && !req.continued) return;
          req.complete = true;
          if (echoing) {
            echoing = false;
            socket.write('0\r\n\r\n');
            return;
          }
          act(script.final?.(req) ?? NO_CONTENT);
          return;
        }
        default:
          return;
      }
    });
    socket.on('data', (d: Buffer) => {
      try {
        decoder.push(d);
      } catch {
        socket.destroy();
      }
    });
  };
  const server: Server = tls === undefined ? createServer(onConnection) : createTlsServer({ cert: tls.cert, key: tls.key }, onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    requests,
    sockets,
    connections: () => connections,
    url: (service = 'avscan') => `${tls === undefined ? 'icap' : 'icaps'}://127.0.0.1:${port}/${service}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
