/**
 * A local HTTP origin (node:http on 127.0.0.1, a free port) for tests that put a real proxy
 * (Squid) in front of icap-bridge. It serves generated files by path and accepts uploads.
 *
 * Every file is generated, never stored: the bytes come from AES-128-CTR keyed by the file's
 * name (a fast, deterministic, incompressible stream), optionally followed by a fixed tail (the
 * EICAR string). The same generator is exported, so a client checks byte-identity by sha256
 * without holding either copy: `expectedSha256('/clean-100m.bin')`.
 *
 * GET /NAME          one of ORIGIN_FILES, with Content-Length, streamed with backpressure;
 *                    a query string is ignored (tests make URLs unique with ?n=…)
 * POST|PUT /ANYTHING reads the body and answers 200 JSON { bytes, sha256 }
 * Every request is recorded (method, path, bytes read, sha256, whether its body was complete),
 * so a test can show that an upload never reached the origin.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, pipeline } from 'node:stream';
import { EICAR } from './icap-messages.js';

export interface GeneratedFile {
  /** Total size in bytes, tail included. */
  readonly size: number;
  /** Bytes at the very end of the file (EICAR for the infected files). */
  readonly tail?: Buffer;
}

const MiB = 1024 * 1024;

export const ORIGIN_FILES: Readonly<Record<string, GeneratedFile>> = {
  '/clean-64k.bin': { size: 65_536 },
  '/clean-200k.bin': { size: 200 * 1024 },
  '/clean-1m.bin': { size: MiB },
  '/clean-100m.bin': { size: 100 * MiB },
  '/eicar.com': { size: EICAR.length, tail: EICAR },
  '/eicar-1m.bin': { size: MiB, tail: EICAR },
  '/clean-500m.bin': { size: 500 * MiB },
  '/eicar-500m.bin': { size: 500 * MiB, tail: EICAR },
};

const PIECE = 64 * 1024;

/** The bytes of a generated file, in pieces of at most 64 KiB. */
export function* generateFile(path: string): Generator<Buffer> {
  const file = ORIGIN_FILES[path];
  if (file === undefined) throw new Error(`no generated file ${path}`);
  const tail = file.tail ?? Buffer.alloc(0);
  const seed = createHash('sha256').update(`icap-bridge origin ${path}`).digest();
  const cipher = createCipheriv('aes-128-ctr', seed.subarray(0, 16), seed.subarray(16, 32));
  const zeros = Buffer.alloc(PIECE);
  for (let left = file.size - tail.length; left > 0; left -= PIECE) {
    yield cipher.update(left >= PIECE ? zeros : zeros.subarray(0, left));
  }
  if (tail.length > 0) yield Buffer.from(tail);
}

/** A generated file as one buffer: only for small files (uploads). */
export function fileBytes(path: string): Buffer {
  const file = ORIGIN_FILES[path];
  if (file === undefined || file.size > 16 * MiB) throw new Error(`fileBytes is for small files, not ${path}`);
  return Buffer.concat([...generateFile(path)]);
}

const shaCache = new Map<string, string>();

/** sha256 (hex) of a generated file, computed once per path by streaming the generator. */
export function expectedSha256(path: string): string {
  let sha = shaCache.get(path);
  if (sha === undefined) {
    const hash = createHash('sha256');
    for (const piece of generateFile(path)) hash.update(piece);
    sha = hash.digest('hex');
    shaCache.set(path, sha);
  }
  return sha;
}

export interface OriginRequest {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  /** Request body bytes read so far (uploads). */
  bytes: number;
  sha256: string | null;
  /** True once the request body was read to its end. */
  complete: boolean;
}

export interface OriginServer {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly base: string;
  /** Every request received, in order of arrival. */
  readonly requests: OriginRequest[];
  stop(): Promise<void>;
}

export interface OriginOptions {
  /**
   * Cache-Control of the files (default `no-store`; uploads always answer `no-store`). A cacheable
   * value (e.g. `public, max-age=3600`) also sends a Last-Modified of a day ago.
   */
  cacheControl?: string;
}

export async function startOriginServer(options: OriginOptions = {}): Promise<OriginServer> {
  const cacheControl = options.cacheControl ?? 'no-store';
  const lastModified = new Date(Date.now() - 86_400_000).toUTCString();
  const requests: OriginRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const record: OriginRequest = {
      method: req.method ?? '',
      path,
      url,
      headers: req.headers,
      bytes: 0,
      sha256: null,
      complete: false,
    };
    requests.push(record);
    if (req.method === 'POST' || req.method === 'PUT') {
      const hash = createHash('sha256');
      req.on('data', (d: Buffer) => {
        record.bytes += d.length;
        hash.update(d);
      });
      req.on('end', () => {
        record.complete = true;
        record.sha256 = hash.digest('hex');
        const body = JSON.stringify({ bytes: record.bytes, sha256: record.sha256 });
        res.writeHead(200, {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          'Cache-Control': 'no-store',
        });
        res.end(body);
      });
      req.on('error', () => res.destroy());
      return;
    }
    req.resume();
    const file = ORIGIN_FILES[path];
    if ((req.method !== 'GET' && req.method !== 'HEAD') || file === undefined) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405, { 'Content-Length': 0 });
      res.end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': file.size,
      'Cache-Control': cacheControl,
      ...(cacheControl === 'no-store' ? {} : { 'Last-Modified': lastModified }),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    // pipeline() destroys the generator stream if the proxy goes away mid-body.
    pipeline(Readable.from(generateFile(path), { objectMode: false }), res, () => {});
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    requests,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
