/**
 * One MetaDefender Core server: a keep-alive undici Pool to its origin and the few request shapes
 * the adapter needs (JSON calls, the streamed upload, the streamed download). No policy here —
 * what a status means is result-map.ts's job, which endpoint to use is the pool's.
 *
 * DNS mode pins a server to one address of its name: the undici Pool keeps the configured origin
 * (so `Host: <name>:<port>` and, for https, SNI and certificate checks use the name) and its
 * connector resolves the name to that one address only.
 */
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIPv6, type LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { Pool, type Dispatcher } from 'undici';
import { CodedError, type ErrorCode } from '../../errors.js';
import { BodySpool, SpoolError } from '../../pipeline/spool.js';
import { copyToSpool } from '../../pipeline/spool-sink.js';
import type { SpooledBody } from '../../pipeline/spooled-body.js';

/** Error codes of failures below HTTP (STYLE.md "Stable codes"). */
export const MD_ERROR_CODES = {
  /** Connection refused, reset or closed before an answer; DNS or connect timeout. */
  unreachable: 'ICAP_ERR_MD_UNREACHABLE',
  /** The caller's signal (timeout or abandoned transaction) fired. */
  aborted: 'ICAP_ERR_MD_ABORTED',
  /** An answer broke HTTP or exceeded what we read. */
  protocol: 'ICAP_ERR_MD_PROTOCOL',
} as const satisfies Record<string, ErrorCode>;

export class MetaDefenderError extends CodedError<(typeof MD_ERROR_CODES)[keyof typeof MD_ERROR_CODES]> {}

/** A JSON answer; `json` is undefined and `malformed` set when the body did not parse. */
export interface JsonReply {
  readonly status: number;
  readonly json: unknown;
  readonly malformed: string | undefined;
  /**
   * The answer's `Retry-After` in ms, when it is delay-seconds (RFC 9110 §10.2.3); the HTTP-date
   * form is ignored. The spec names no Retry-After (§2); a balancer in front of Core may send one.
   */
  readonly retryAfterMs: number | undefined;
}

/** A text answer (the batch certificate). */
export interface TextReply {
  readonly status: number;
  readonly text: string;
  readonly contentType?: string;
}

export interface DownloadedFile {
  readonly body: SpooledBody;
  readonly fileName: string | undefined;
  readonly contentType: string | undefined;
  dispose(): Promise<void>;
}

/** Where and how much of a download (§5) is kept. */
export interface DownloadSink {
  /** Memory up to memoryBytes, then a temp file in directory. */
  readonly spool: { readonly memoryBytes: number; readonly directory: string };
  /** Largest file taken; a larger one is answered `tooLarge` and nothing of it is kept. */
  readonly maxBytes: number;
}

export interface DownloadReply {
  readonly status: number;
  /** The file, for a 200 that fit within maxBytes. */
  readonly file?: DownloadedFile;
  /** The `{"err"}` text of a non-200 answer (§1, §5). */
  readonly err?: string;
  /** A 200 larger than maxBytes, by its Content-Length or as it arrived; its temp file is gone. */
  readonly tooLarge?: true;
}

/** Largest JSON answer read; results with many archive children stay far below it. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** Socket-level failures: the request may not have reached Core, or Core died mid-answer. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

export interface CoreEndpointOptions {
  /** Base URL, e.g. `http://core-1:8008` or `http://old-core/metascan_rest`. */
  readonly url: string;
  /** Concurrent connections to this server (undici queues beyond it). */
  readonly connections: number;
  /** Sent with every call (`apikey`, `user_agent`). */
  readonly headers: Readonly<Record<string, string>>;
  /** For messages and status: the pool endpoint id. Default: the URL. */
  readonly label?: string;
  /** Connect to this address (a DNS record of the URL's host) instead of resolving the host. */
  readonly pin?: string;
  /** Extra TLS options for https (a private CA, say). */
  readonly tls?: Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized'>;
}

/** A lookup that answers every query with `address`: the connection goes there, the name stays. */
export function pinnedLookup(address: string): LookupFunction {
  const family = isIPv6(address) ? 6 : 4;
  return (_hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    // Node ≥ 20 asks with `all: true` (autoSelectFamily) and wants a list.
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

export class CoreEndpoint {
  /** The base URL as configured, without a trailing slash. */
  readonly url: string;
  /** The URL, or `<url> (<pinned address>)`: messages show it. */
  readonly label: string;
  readonly #origin: string;
  /** Path prefix of the base URL ('' or e.g. '/metascan_rest'). */
  readonly #prefix: string;
  readonly #pool: Pool;
  readonly #headers: Readonly<Record<string, string>>;

  constructor(options: CoreEndpointOptions) {
    const parsed = new URL(options.url);
    this.url = options.url.replace(/\/+$/, '');
    this.label = options.label ?? this.url;
    this.#origin = parsed.origin;
    this.#prefix = parsed.pathname.replace(/\/+$/, '');
    this.#headers = options.headers;
    this.#pool = new Pool(this.#origin, {
      connections: options.connections,
      keepAliveTimeout: 4_000,
      // undici passes these to net.connect / tls.connect: `lookup` pins the address, and the
      // TLS servername stays the URL's host name.
      connect: { timeout: 5_000, ...options.tls, ...(options.pin !== undefined && { lookup: pinnedLookup(options.pin) }) },
    });
  }

  /** Requests queued in the pool waiting for a connection. */
  get queued(): number {
    return this.#pool.stats.queued;
  }

  /** A call answered with JSON (or an `{"err"}` object); the body is always consumed. */
  async json(method: 'GET' | 'POST', path: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<JsonReply> {
    const res = await this.#request({ method, path, headers, signal });
    return readJson(res);
  }

  /**
   * `POST /file` from the spool with an explicit Content-Length: Core rejects chunked uploads
   * (§1, §2 411), and undici only sends chunked for a stream body when no length is given.
   */
  async upload(body: SpooledBody, headers: Record<string, string>, signal: AbortSignal): Promise<JsonReply> {
    const stream: Readable = body.createReadStream();
    try {
      const res = await this.#request({
        method: 'POST',
        path: '/file',
        headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(body.size) },
        body: stream,
        signal,
      });
      return await readJson(res);
    } finally {
      stream.destroy();
    }
  }

  /** A GET answered with text: §7's signed batch report is `text/plain` YAML. Bounded like JSON answers. */
  async text(path: string, signal: AbortSignal): Promise<TextReply> {
    const res = await this.#request({ method: 'GET', path, headers: {}, signal });
    const contentType = headerValue(res.headers['content-type']);
    return { status: res.statusCode, text: await readText(res), ...(contentType !== undefined && { contentType }) };
  }

  /**
   * A file download (§5), written to a spool as it arrives so a large sanitized file is never
   * held whole in memory, and never more than `sink.maxBytes` of it. `path` is on this endpoint;
   * `absoluteUrl` (MetaDefender Cloud's link) may be anywhere and gets a one-off connection.
   *
   * A temp file that fails (ENOSPC, EFBIG, EIO, a removed directory) rejects with the spool's
   * SpoolError as it is — our disk, not Core — and the caller's abort wins over anything else.
   * On every failure the temp file is removed before this settles.
   */
  async download(target: { path: string } | { absoluteUrl: string }, sink: DownloadSink, signal: AbortSignal): Promise<DownloadReply> {
    let res: Dispatcher.ResponseData;
    if ('path' in target) {
      res = await this.#request({ method: 'GET', path: target.path, headers: {}, signal });
    } else {
      const url = new URL(target.absoluteUrl);
      const sameOrigin = url.origin === this.#origin;
      const dispatcher = sameOrigin ? this.#pool : new Pool(url.origin, { connections: 1 });
      try {
        res = await request(dispatcher, { method: 'GET', path: url.pathname + url.search, headers: sameOrigin ? this.#headers : {}, signal });
      } catch (err) {
        if (!sameOrigin) void dispatcher.close();
        throw err;
      }
      if (!sameOrigin) res.body.once('close', () => void dispatcher.close());
    }
    if (res.statusCode !== 200) {
      const reply = await readJson(res);
      const err = reply.json !== undefined ? (reply.json as { err?: unknown }).err : undefined;
      return { status: res.statusCode, ...(typeof err === 'string' && { err }) };
    }
    // Announced too large: refused before a byte is stored (STYLE.md "Limits while parsing").
    if (Number(headerValue(res.headers['content-length'])) > sink.maxBytes) {
      res.body.destroy();
      return { status: 200, tooLarge: true };
    }
    const out = new BodySpool(sink.spool);
    try {
      // Counted as it arrives: a missing or lying Content-Length. A temp file behind waits for it,
      // and one that failed ends the wait with its SpoolError (spool-sink.ts).
      if (!(await copyToSpool(res.body, out, { signal, maxBytes: sink.maxBytes }))) {
        res.body.destroy();
        await out.dispose();
        return { status: 200, tooLarge: true };
      }
      const body = await out.end();
      return {
        status: 200,
        file: {
          body,
          fileName: fileNameFromDisposition(headerValue(res.headers['content-disposition'])),
          contentType: headerValue(res.headers['content-type']),
          dispose: () => out.dispose(),
        },
      };
    } catch (err) {
      res.body.destroy();
      await out.dispose();
      if (err instanceof SpoolError && !signal.aborted) throw err;
      throw classify(err, signal);
    }
  }

  close(): Promise<void> {
    return this.#pool.close();
  }

  /** Destroys connections now (requests in flight fail). */
  destroy(): Promise<void> {
    return this.#pool.destroy();
  }

  #request(opts: { method: 'GET' | 'POST'; path: string; headers: Record<string, string>; body?: Readable; signal: AbortSignal }): Promise<Dispatcher.ResponseData> {
    return request(this.#pool, { ...opts, path: this.#prefix + opts.path, headers: { ...this.#headers, ...opts.headers } });
  }
}

async function request(
  dispatcher: Dispatcher,
  opts: { method: 'GET' | 'POST'; path: string; headers: Record<string, string>; body?: Readable; signal: AbortSignal },
): Promise<Dispatcher.ResponseData> {
  try {
    return await dispatcher.request({ ...opts, body: opts.body ?? null });
  } catch (err) {
    throw classify(err, opts.signal);
  }
}

async function readJson(res: Dispatcher.ResponseData): Promise<JsonReply> {
  const text = await readText(res);
  const retryAfterMs = retryAfterMsOf(headerValue(res.headers['retry-after']));
  try {
    return { status: res.statusCode, json: JSON.parse(text) as unknown, malformed: undefined, retryAfterMs };
  } catch (err) {
    const preview = text.length > 80 ? `${text.slice(0, 80)}…` : text;
    return { status: res.statusCode, json: undefined, malformed: `${(err as Error).message} in ${JSON.stringify(preview)}`, retryAfterMs };
  }
}

/**
 * RFC 9110 §10.2.3 delay-seconds (`1*DIGIT`) in ms; undefined for none, the HTTP-date form or
 * anything else. Not bounded here: a caller caps it by its own deadline.
 */
export function retryAfterMsOf(value: string | undefined): number | undefined {
  const text = value?.trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) * 1000 : undefined;
}

/** The whole answer as UTF-8, at most MAX_JSON_BYTES. */
async function readText(res: Dispatcher.ResponseData): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_JSON_BYTES) {
        res.body.destroy();
        throw new MetaDefenderError(MD_ERROR_CODES.protocol, `answer larger than ${MAX_JSON_BYTES} bytes (HTTP ${res.statusCode})`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof MetaDefenderError) throw err;
    throw classify(err, undefined);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** undici and socket errors → our codes; the caller's abort wins over whatever it caused. */
export function classify(err: unknown, signal: AbortSignal | undefined): MetaDefenderError {
  if (err instanceof MetaDefenderError) return err;
  if (signal?.aborted) return new MetaDefenderError(MD_ERROR_CODES.aborted, 'request aborted', { cause: err });
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) {
    return new MetaDefenderError(MD_ERROR_CODES.unreachable, `${code}: ${message}`, { cause: err });
  }
  return new MetaDefenderError(MD_ERROR_CODES.protocol, message, { cause: err });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** RFC 6266: `filename*=UTF-8''…` preferred over `filename="…"`. */
export function fileNameFromDisposition(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(value);
  if (extended) {
    try {
      return decodeURIComponent(extended[2]!.trim());
    } catch {
      // fall through to the plain form
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))/i.exec(value);
  const name = plain?.[1]?.replace(/\\(.)/g, '$1') ?? plain?.[2]?.trim();
  return name || undefined;
}
