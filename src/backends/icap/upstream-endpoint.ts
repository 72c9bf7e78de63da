/**
 * One upstream ICAP endpoint as the pool sees it (the resource PooledEndpoints keeps per
 * endpoint): where to connect, its OPTIONS answer (cached for Options-TTL, refreshed by the
 * health check and whenever an answer's ISTag differs), its last ISTag, and a small pool of idle
 * persistent connections (RFC 3507 §4.2 allows them; other-engines.md §9 asks for reuse).
 */
import type { ScanErrorKind } from '../backend.js';
import type { LeaseOutcome } from '../pool/endpoint-pool.js';
import type { PoolTarget } from '../pool/pooled-endpoints.js';
import { runOptions } from './exchange.js';
import { ConnectError, IcapConnection, openConnection, type ConnectTarget } from './icap-connection.js';
import { authority, requestUri, type IcapUrl } from './icap-url.js';
import { parseOptionsAnswer, type UpstreamOptions } from './upstream-options.js';

/** An idle connection is closed after this long; servers close theirs too (c-icap: KeepAliveTimeout). */
const IDLE_CLOSE_MS = 30_000;

export type OptionsOutcome =
  | { readonly ok: true; readonly options: UpstreamOptions }
  | { readonly ok: false; readonly kind: ScanErrorKind; readonly message: string; readonly retry: boolean; readonly health: LeaseOutcome };

export interface EndpointSettings {
  readonly connectTimeoutMs: number;
  /**
   * How long one OPTIONS fetch may take, whoever waits for it (the backend's timeout_ms). The fetch
   * is shared, so it cannot run on one caller's signal: a streaming scan's deadline slides with
   * every byte its client sends, and a scan or health check that joined it would wait as long.
   */
  readonly optionsTimeoutMs: number;
  /** Idle connections kept at most. */
  readonly maxIdle: number;
  readonly tls: ConnectTarget['tls'];
  /** Called when this endpoint's ISTag is learnt or changes (the backend's version). */
  readonly onIstag: () => void;
}

/** `shared`, or a timeout outcome as soon as `signal` aborts (the caller's deadline or abort). */
function untilAborted(shared: Promise<OptionsOutcome>, signal: AbortSignal): Promise<OptionsOutcome> {
  const stopped: OptionsOutcome = { ok: false, kind: 'timeout', message: 'OPTIONS: no answer before this scan was stopped', retry: false, health: 'neutral' };
  if (signal.aborted) return Promise.resolve(stopped);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(stopped);
    signal.addEventListener('abort', onAbort, { once: true });
    shared.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export class UpstreamEndpoint {
  /** The pool endpoint id, for results and logs. */
  readonly id: string;
  readonly url: IcapUrl;
  /** The request-line URI and Host header: the configured name, even when pinned to an address. */
  readonly uri: string;
  readonly host: string;
  readonly #target: ConnectTarget;
  readonly #settings: EndpointSettings;
  #options: UpstreamOptions | null = null;
  #expiresAt = 0;
  #refreshing: Promise<OptionsOutcome> | null = null;
  /** The last ISTag learnt from OPTIONS; kept while the endpoint is down, so `version` stays put. */
  istag: string | null = null;
  /** Connections lent to exchanges now (Max-Connections counts these). */
  active = 0;
  /** Connections opened in all, for tests and logs. */
  opened = 0;
  readonly #idle = new Map<IcapConnection, NodeJS.Timeout>();
  #closed = false;
  /** Ends a shared OPTIONS fetch still running when the endpoint is closed. */
  readonly #closing = new AbortController();

  constructor(target: PoolTarget, url: IcapUrl, settings: EndpointSettings) {
    this.id = target.id;
    this.url = url;
    this.uri = requestUri(url, target.hostName);
    this.host = authority(target.hostName, url.port);
    this.#target = { address: target.address, port: target.port, hostName: target.hostName, tls: url.secure ? settings.tls : null };
    this.#settings = settings;
  }

  get options(): UpstreamOptions | null {
    return this.#options;
  }

  /** A connection: an idle one unless `fresh`, else a new one. Rejects with ConnectError. */
  async checkout(signal: AbortSignal, fresh = false): Promise<{ conn: IcapConnection; reused: boolean }> {
    if (!fresh) {
      for (const [conn, timer] of this.#idle) {
        clearTimeout(timer);
        this.#idle.delete(conn);
        if (!conn.reusable) {
          conn.destroy();
          continue;
        }
        conn.setIdle(false);
        this.active++;
        return { conn, reused: true };
      }
    }
    const conn = await openConnection(this.#target, this.#settings.connectTimeoutMs, signal);
    this.opened++;
    this.active++;
    return { conn, reused: false };
  }

  /** Gives a connection back: kept idle only after a complete, well-framed exchange. */
  checkin(conn: IcapConnection, reusable: boolean): void {
    this.active--;
    conn.exchanges++;
    if (!reusable || !conn.reusable || this.#closed || this.#idle.size >= this.#settings.maxIdle) {
      conn.destroy();
      return;
    }
    conn.setIdle(true);
    const timer = setTimeout(() => {
      this.#idle.delete(conn);
      conn.destroy();
    }, IDLE_CLOSE_MS);
    timer.unref();
    this.#idle.set(conn, timer);
  }

  get idleConnections(): number {
    return this.#idle.size;
  }

  /** The OPTIONS answer, fetched when missing or past its Options-TTL. */
  ensureOptions(signal: AbortSignal): Promise<OptionsOutcome> {
    if (this.#options !== null && Date.now() < this.#expiresAt) return Promise.resolve({ ok: true, options: this.#options });
    return this.refreshOptions(signal);
  }

  /**
   * Asks OPTIONS now (the health check); joins a request already running. The fetch runs on its
   * own deadline (optionsTimeoutMs); each caller stops waiting when its own signal aborts.
   */
  refreshOptions(signal: AbortSignal): Promise<OptionsOutcome> {
    if (this.#refreshing === null) {
      const own = AbortSignal.any([AbortSignal.timeout(this.#settings.optionsTimeoutMs), this.#closing.signal]);
      this.#refreshing = this.#fetchOptions(own).finally(() => (this.#refreshing = null));
    }
    return untilAborted(this.#refreshing, signal);
  }

  /** An answer carried `istag`: when it differs from OPTIONS', the service changed; ask again before the next scan. */
  noteIstag(istag: string | undefined): void {
    // Without an ISTag in OPTIONS there is nothing to compare with (and no reason to ask on every scan).
    if (istag !== undefined && this.#options?.istag != null && istag !== this.#options.istag) this.#expiresAt = 0;
  }

  close(): void {
    this.#closed = true;
    this.#closing.abort();
    for (const [conn, timer] of this.#idle) {
      clearTimeout(timer);
      conn.destroy();
    }
    this.#idle.clear();
  }

  async #fetchOptions(signal: AbortSignal): Promise<OptionsOutcome> {
    // One try on an idle connection, then one on a fresh one: an idle connection the server
    // closed meanwhile says nothing about the server.
    for (const fresh of [false, true]) {
      let got: { conn: IcapConnection; reused: boolean };
      try {
        got = await this.checkout(signal, fresh);
      } catch (err) {
        const e = err as ConnectError;
        return { ok: false, kind: e.kind ?? 'unreachable', message: e.message, retry: true, health: e.refused ? 'down' : 'failure' };
      }
      const result = await runOptions(got.conn, this.uri, this.host, signal);
      if (!result.ok) {
        this.checkin(got.conn, false);
        if (got.reused && !signal.aborted) continue;
        return { ok: false, kind: signal.aborted ? 'timeout' : 'backend-error', message: `OPTIONS: ${result.message}`, retry: true, health: 'failure' };
      }
      const closing = result.head.headers.tokens('Connection').has('close');
      this.checkin(got.conn, !closing);
      const parsed = parseOptionsAnswer(result.head);
      if (!parsed.ok) {
        const overloaded = result.head.status === 503;
        return {
          ok: false,
          kind: overloaded ? 'overloaded' : 'backend-error',
          message: `${parsed.reason}${result.head.status === 404 ? ' (wrong service path?)' : ''}`,
          retry: overloaded,
          health: overloaded ? 'failure' : 'neutral',
        };
      }
      const options = parsed.options;
      this.#options = options;
      this.#expiresAt = options.ttlMs === null ? Number.POSITIVE_INFINITY : Date.now() + options.ttlMs;
      if (options.istag !== null && options.istag !== this.istag) {
        this.istag = options.istag;
        this.#settings.onIstag();
      }
      return { ok: true, options };
    }
    return { ok: false, kind: 'backend-error', message: 'OPTIONS failed', retry: true, health: 'failure' };
  }
}
