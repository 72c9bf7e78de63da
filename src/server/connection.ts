/**
 * One ICAP connection: feeds socket bytes to the decoder, routes each request to a service,
 * runs one Transaction at a time, and owns the per-phase timeouts (STYLE.md "One state object
 * per connection, named timeouts per phase").
 *
 * Phases and their timers:
 *   head        waiting for a complete request head     → server.timeouts.header_ms, then 408 + close
 *   body        reading a body                          → server.timeouts.body_idle_ms of silence, then abort + 408 + close
 *   processing  scanning and answering                  → none here; backends have their own timeouts
 *   idle        between requests (keep-alive)           → server.timeouts.keep_alive_ms, then close
 *   closing     an error answer was sent; input is drained and dropped until the peer closes
 *
 * In every phase, an answer the client takes none of for server.timeouts.write_idle_ms is cut
 * (ResponseSink's SendWatch): the transaction is aborted (send-timeout) and the socket destroyed.
 * Whenever we end our side, the socket is destroyed LINGER_MS after our last byte went out, whether
 * or not the client closes its side: a client that ignores our FIN must not hold the connection.
 *
 * Requests are answered strictly in order: the decoder pauses at message-end and resumes when the
 * answer is written, so pipelined requests wait their turn. The socket pauses too, but only if bytes
 * arrive meanwhile, so they never pile up beyond a socket read. A client's FIN (half-close) still
 * gets every complete request before it answered, then the connection closes.
 */
import type { Socket } from 'node:net';
import {
  CONTINUE_100,
  IcapDecoder,
  IcapProtocolError,
  encodeSimpleResponse,
  headText,
  type DecoderEvent,
  type IcapRequestHead,
} from '../../protocol/index.js';
import type { AccessRecord } from '../observability/access-log.js';
import type { Logger } from '../observability/logger.js';
import type { Generation } from './generation.js';
import { buildOptionsHeaders } from './options-response.js';
import { PerSecondResponseCache } from './response-cache.js';
import { commonHeaders, errorResponse } from './response-headers.js';
import { ResponseSink } from './response-sink.js';
import { connectionClosed, connectionOpened, corkUntilEndOfTurn, worthCoalescing } from './write-coalescer.js';
import type { Service } from './service-registry.js';
import { Transaction, type AbortReason, type ErrorAnswer } from './transaction.js';

/**
 * What a connection needs from its server. The generation (config, services, backends) is taken
 * per request, so a reload applies to the next request while a running one keeps its own.
 */
export interface ConnectionContext {
  current(): Generation;
  readonly logger: Logger;
  nextTransactionId(): string;
  /** Handed to each Transaction as it is (no closure per request), so it must not depend on `this`. */
  readonly onTransactionFinished: (record: AccessRecord) => void;
  /** An OPTIONS request was answered (access log and metrics; no transaction object exists). */
  onOptions(record: AccessRecord): void;
  /**
   * A request was answered with an error status before any transaction ran (protocol_errors_total).
   * An error answer that ends a running transaction is in that transaction's access record instead.
   */
  onRejected(status: number): void;
}

type Phase = 'head' | 'body' | 'processing' | 'idle' | 'closing';

/** OPTIONS answers per service (response-cache.ts). */
const OPTIONS_ANSWERS = new PerSecondResponseCache();
const OPTIONS_KEYS = new WeakMap<Service, string>();

/** After an error answer, how long to drain the client's remaining bytes before destroying. */
const LINGER_MS = 2000;
/** On shutdown, a connection younger than this that sent nothing yet gets this long to send its request. */
const FRESH_CONNECTION_MS = 1000;

export class IcapConnection {
  readonly #socket: Socket;
  readonly #ctx: ConnectionContext;
  readonly #decoder: IcapDecoder;
  readonly #sink: ResponseSink;
  readonly #log: Logger;
  readonly clientAddress: string;
  readonly #opened = performance.now();
  #requestStarted = 0;
  /**
   * When the input being decoded arrived (performance.now() scale): the request-head and
   * message-end events it gives share it, so a request reads the clock three times, not seven.
   */
  #inputAt = performance.now();
  #phase: Phase = 'head';
  #phaseStarted = performance.now();
  #lastBodyActivity = 0;
  #timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (performance.now() scale); it may be earlier than the phase's deadline. */
  #timerFiresAt = 0;
  /** The generation the current request runs on (retained), else the latest seen. */
  #gen: Generation;
  #retained = false;
  #head: IcapRequestHead | null = null;
  #service: Service | null = null;
  #txn: Transaction | null = null;
  /** Bytes handed to the decoder on this connection (those read while closing are never fed). */
  #bytesFed = 0;
  /** Where the last message ended in the bytes fed: the next request's bytes begin there. */
  #messageEndedAt = 0;
  /** Requests begun on this connection (server.max_requests_per_connection). */
  #requests = 0;
  /**
   * Close after the current answer: the client sent its FIN, the server is shutting down, or the
   * answer is the last of server.max_requests_per_connection.
   */
  #peerEnded = false;
  /** The client sent its FIN (half-close): requests it sent before it are still answered. */
  #finReceived = false;
  /** The socket was paused because bytes came while an answer was being made (see #onData). */
  #socketPaused = false;
  /** A decoder call is running (#feed): a call made from one of its events only nests. */
  #feeding = false;
  /** Resolves when the connection has closed; the server awaits these on shutdown. */
  readonly closed: Promise<void>;

  constructor(socket: Socket, ctx: ConnectionContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.#gen = ctx.current();
    this.clientAddress = socket.remoteAddress ?? 'unknown';
    this.#log = ctx.logger.child({ client: this.clientAddress, port: socket.remotePort });
    this.#sink = new ResponseSink(socket, {
      idleMs: () => this.#gen.timeouts.writeIdleMs,
      onStalled: (idleMs) => this.#onSendStalled(idleMs),
    });
    // Parser limits are fixed for the life of the connection: those in force when it opened.
    this.#decoder = new IcapDecoder((e) => this.#onEvent(e), this.#gen.limits);
    socket.setNoDelay(true);
    // A client may half-close right after its request (`printf … | nc`, scripted clients) and still
    // wait for the answer. Node would end our side as soon as the peer's FIN is read (allowHalfOpen
    // false, the default), so an answer still being made was never sent. Our own #onEnd decides instead:
    // answer first, then close (RFC 9293 §3.6: a half-closed connection still carries the other way).
    socket.allowHalfOpen = true;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    connectionOpened();
    socket.on('close', () => this.#onClose());
    socket.on('error', (err) => this.#log.debug({ err }, 'socket error'));
    this.#enter('head');
  }

  /** True while no request is in progress: a graceful shutdown may close it now. */
  get idle(): boolean {
    return this.#phase === 'idle' || (this.#phase === 'head' && this.#decoder.idle);
  }

  /** Graceful shutdown: close now if idle, else after the current answer. */
  closeWhenIdle(): void {
    this.#peerEnded = true;
    if (!this.idle) return; // closes after the current answer
    if (this.#socket.bytesRead === 0 && performance.now() - this.#opened < FRESH_CONNECTION_MS) {
      // Just accepted, its first request probably on the wire: a load balancer that handed it
      // to us cannot retry once the TCP connect succeeded. Serve that request, then close.
      setTimeout(() => {
        if (this.idle) this.#endAndLinger();
      }, FRESH_CONNECTION_MS).unref();
      return;
    }
    this.#endAndLinger();
  }

  destroy(): void {
    this.#txn?.abort('server-closing');
    this.#socket.destroy();
  }

  // ── socket events ──────────────────────────────────────────────────────────────────────────

  #onData(chunk: Buffer): void {
    if (this.#phase === 'closing') return; // draining after an error answer
    const now = performance.now();
    this.#inputAt = now;
    if (this.#phase === 'processing') {
      // A pipelined request (or its part) came before our answer: the paused decoder keeps it, and
      // the socket stops reading until the answer is out, so at most this one chunk waits in memory.
      // Pausing only now, not at every message-end, spares a pause/resume pair (and resume's
      // nextTick) per request when the client waits for its answer, as clients nearly always do.
      this.#socket.pause();
      this.#socketPaused = true;
    } else if (this.#phase === 'idle') this.#enter('head', now);
    this.#lastBodyActivity = now;
    this.#bytesFed += chunk.length;
    this.#feed(() => this.#decoder.push(chunk));
  }

  /**
   * Runs a decoder call; a protocol error becomes its ICAP status, anything else a 500. Called
   * again from inside an event of that call (an answer that went out at once resumes the decoder),
   * it only runs the call: the decoder's loop is already running, and the outer call finishes up.
   */
  #feed(call: () => void): void {
    if (this.#feeding) {
      call();
      return;
    }
    this.#feeding = true;
    try {
      call();
    } catch (err) {
      if (err instanceof IcapProtocolError) {
        this.#log.warn({ code: err.code, status: err.status, detail: err.message }, 'protocol error');
        this.#rejectAndClose(err.status, undefined, this.#aborting('protocol-error'));
      } else if (this.#txn?.spoolFailure) {
        // A body write found the temp file failed (the failure came after an earlier write).
        this.#spoolFailed();
      } else {
        this.#log.error({ err }, 'internal error while decoding');
        this.#rejectAndClose(500, undefined, this.#aborting('protocol-error'));
      }
    } finally {
      this.#feeding = false;
    }
    // After a FIN, once every complete request before it was taken: what is left held part of a
    // request only, which can never complete (#onEnd closes). Checked here, when the decoder's loop
    // is done, not inside it, where input still waiting would look like such a part.
    // (The phase is read anew: the decoder's events may have changed it.)
    const phase = this.#phase as Phase;
    if (this.#finReceived && phase !== 'processing' && phase !== 'closing') this.#onEnd();
  }

  /**
   * The body's temp file failed mid-body (disk full, a file size limit, an I/O error): 500 at once
   * and close, without reading the rest of a body that could not be scanned. RFC 3507 §4.3.3
   * names this very case: "500 - Server error ... such as 'out of disk space'". The transaction
   * is logged with reason spool-error, its temp file removed.
   */
  #spoolFailed(): void {
    const txn = this.#txn!;
    this.#rejectAndClose(500, undefined, (answer) => txn.abortForSpoolFailure(answer));
  }

  #onEnd(): void {
    this.#peerEnded = true;
    this.#finReceived = true;
    // A half-close mid-body loses the request; between requests it just ends the connection.
    if (this.#phase === 'body' || (this.#phase === 'head' && !this.#decoder.idle)) {
      this.#txn?.abort('client-disconnected');
      this.#socket.destroy();
    } else if (this.#phase !== 'processing') {
      this.#socket.end();
    }
  }

  #onClose(): void {
    connectionClosed();
    this.#clearTimer();
    // Whatever was in flight is aborted: its spool freed, its access line says so.
    this.#txn?.abort('client-disconnected');
    this.#txn = null;
    this.#releaseGeneration();
  }

  #releaseGeneration(): void {
    if (!this.#retained) return;
    this.#retained = false;
    this.#gen.release();
  }

  // ── decoder events ─────────────────────────────────────────────────────────────────────────

  #onEvent(e: DecoderEvent): void {
    if (this.#phase === 'closing') return;
    switch (e.type) {
      case 'request-head':
        this.#onRequestHead(e.head);
        return;
      case 'http-head':
        this.#txn?.addHttpHead(e.head);
        return;
      case 'headers-end':
        if (e.body !== null) {
          this.#txn?.beginBody(); // OPTIONS bodies (opt-body) are read and dropped
          this.#enter('body', this.#inputAt);
        }
        return;
      case 'body':
        if (this.#txn !== null && !this.#txn.writeBody(e.data)) {
          // Disk is slower than the client: stop reading until the spool drains.
          this.#socket.pause();
          this.#socketPaused = true;
          this.#txn.onDrain(() => {
            // After message-end the socket stays paused until the answer is out (#process).
            if (this.#phase !== 'body') return;
            // Not drained but failed (disk full): no more body will be stored, so none is read.
            if (this.#txn?.spoolFailure) {
              this.#spoolFailed();
              return;
            }
            this.#socketPaused = false;
            this.#socket.resume();
          });
        }
        return;
      case 'preview-end': {
        // false: the policy answered on the preview alone; §4.5 lets the server reply instead of 100.
        const wantsRest = this.#txn?.previewEnded(e.ieof) ?? true;
        if (!e.ieof && !wantsRest) this.#decoder.skipBody();
        else if (!e.ieof) {
          // §4.5: the server wants the rest of the body. Never after ieof (then this branch is not taken).
          if (worthCoalescing()) corkUntilEndOfTurn(this.#socket);
          this.#socket.write(CONTINUE_100);
          this.#decoder.continueBody();
        }
        return;
      }
      case 'body-end':
        this.#txn?.bodyEnded(e.trailers);
        return;
      case 'message-end':
        // Answers go strictly in order: the decoder holds what follows until this one is written
        // (the socket pauses too if more bytes arrive meanwhile; #onData).
        this.#decoder.pause();
        this.#enter('processing', this.#inputAt); // no deadline while processing: any recent time will do
        this.#process();
        return;
    }
  }

  #onRequestHead(head: IcapRequestHead): void {
    this.#requestStarted = this.#inputAt;
    this.#gen = this.#ctx.current();
    this.#gen.retain();
    this.#retained = true;
    const service = this.#gen.registry.resolve(head.service);
    if (service === undefined) {
      // The service comes from the URI as latin1 bytes: headText writes them once, as the UTF-8 text
      // they are (or %XX where they are not UTF-8), not each byte encoded again as a character.
      this.#log.info({ method: head.method, service: headText(head.service) }, 'unknown service');
      this.#rejectAndClose(404);
      return;
    }
    if (head.method !== 'OPTIONS' && !service.methods.has(head.method)) {
      this.#log.info({ method: head.method, service: service.name }, 'method not allowed for service');
      this.#rejectAndClose(405, service.istag);
      return;
    }
    this.#head = head;
    this.#service = service;
    this.#sink.started = false;
    const maxRequests = this.#gen.config.server.max_requests_per_connection;
    if (maxRequests > 0 && ++this.#requests >= maxRequests) {
      // This answer is the last: it says so, and the connection closes after it (#answered).
      this.#sink.lastOnConnection = true;
      this.#peerEnded = true;
    }
    if (head.method === 'OPTIONS') return;
    this.#txn = new Transaction({
      id: this.#ctx.nextTransactionId(),
      head,
      service,
      clientAddress: this.clientAddress,
      spool: this.#gen.spool,
      sink: this.#sink,
      logger: this.#log,
      startedAt: this.#requestStarted,
      onFinished: this.#ctx.onTransactionFinished, // the context's own function: no closure per transaction
    });
  }

  /**
   * Answers the request whose message-end just came. Most answers go out at once (an OPTIONS, a
   * REQMOD without a body: no promise), and the connection moves on to its next request in the same
   * call, inside the decoder's event (its loop then carries on with input already buffered). A scan
   * or a socket that pushes back finishes later, from a promise.
   */
  #process(): void {
    const service = this.#service!;
    // bytes_in is the request's own bytes: the decoder has consumed all of them at message-end and
    // holds only what came behind (pipelined requests, RFC 3507 §4.2 with RFC 9112 §9.3.2), which
    // the socket's read count would wrongly give to this request and so take from the next.
    const endedAt = this.#bytesFed - this.#decoder.buffered;
    const bytesIn = endedAt - this.#messageEndedAt;
    this.#messageEndedAt = endedAt;
    let answering: Promise<void> | null;
    try {
      answering = this.#head!.method === 'OPTIONS' ? this.#answerOptions(service, bytesIn) : this.#txn!.respond(bytesIn);
    } catch (err) {
      this.#answerFailed(err, service);
      return;
    }
    if (answering === null) this.#answered();
    else answering.then(() => this.#answered(), (err: unknown) => this.#answerFailed(err, service));
  }

  /** The OPTIONS answer (cached per second and service); a promise only on backpressure. */
  #answerOptions(service: Service, bytesIn: number): Promise<void> | null {
    const istag = service.istag;
    const maxConnections = this.#gen.config.server.max_connections;
    // Keyed by the ISTag and by the headers themselves: Methods, Options-TTL, Allow and Preview
    // change with settings that leave the ISTag alone (service-registry.ts, TRANSPORT_ONLY_KEYS),
    // and a reload changing only those must not get the old answer for the rest of the second.
    // A Service object belongs to one generation, so its key is built once.
    let key = OPTIONS_KEYS.get(service);
    let headers: [string, string][] | undefined;
    if (key === undefined) {
      headers = buildOptionsHeaders(service, maxConnections);
      OPTIONS_KEYS.set(service, (key = headers.map(([name, value]) => `${name}: ${value}`).join('\n')));
    }
    const answer = OPTIONS_ANSWERS.get(istag, key, () =>
      encodeSimpleResponse(200, [...commonHeaders(istag), ...(headers ?? buildOptionsHeaders(service, maxConnections))]),
    );
    const drained = this.#sink.writeNow(answer);
    if (drained === null) {
      this.#optionsAnswered(service, bytesIn, answer.length);
      return null;
    }
    return drained.then(() => this.#optionsAnswered(service, bytesIn, answer.length));
  }

  #optionsAnswered(service: Service, bytesIn: number, bytesOut: number): void {
    this.#ctx.onOptions({
      transaction_id: this.#ctx.nextTransactionId(),
      client: this.clientAddress,
      method: 'OPTIONS',
      service: service.name,
      icap_status: 200,
      http_status: null,
      bytes_in: bytesIn,
      bytes_out: bytesOut,
      preview: null,
      body_bytes: 0,
      verdict: 'none',
      threats: [],
      scan_errors: [],
      reason: 'options',
      duration_ms: Math.round((performance.now() - this.#requestStarted) * 10) / 10,
      scans: [],
    });
  }

  /** The answer could not be completed: a client gone closes as usual; a bug gets a 500 if nothing was sent yet, else a cut. */
  #answerFailed(err: unknown, service: Service): void {
    this.#releaseGeneration();
    if ((err as { code?: string } | null)?.code === 'ICAP_ERR_CLIENT_GONE') {
      this.#answered();
      return;
    }
    const txn = this.#txn;
    if (!this.#sink.started) {
      this.#rejectAndClose(500, service.istag, txn === null ? undefined : (answer) => txn.endWithError(answer));
    } else {
      txn?.endWithError(null);
      this.#socket.destroy();
    }
  }

  /** The answer is out: on to the next request, or close (FIN, shutdown). */
  #answered(): void {
    this.#releaseGeneration();
    this.#txn = null;
    this.#head = null;
    this.#service = null;
    // The answer is complete: an error in the next request's head (before its request-head event)
    // must still get its own status line, not a silent close.
    this.#sink.started = false;
    if (this.#socket.destroyed || this.#phase === 'closing') return;
    // After a FIN, complete requests sent before it are still answered (as HTTP servers answer
    // pipelined requests); on shutdown, the connection closes after this answer.
    if (this.#peerEnded && !(this.#finReceived && !this.#decoder.idle)) {
      this.#endAndLinger();
      return;
    }
    this.#enter(this.#decoder.idle ? 'idle' : 'head');
    // A request already buffered starts now, when its turn comes (its duration is its own answer's).
    this.#inputAt = this.#phaseStarted;
    if (this.#socketPaused) {
      this.#socketPaused = false;
      this.#socket.resume();
    }
    // Inside the decoder's event (an answer that went out at once) this only unpauses it: its loop
    // carries on with the buffered input when the event returns, and #feed's caller checks the FIN.
    this.#feed(() => this.#decoder.resume());
  }

  // ── errors and timeouts ────────────────────────────────────────────────────────────────────

  /**
   * Answers with an error status (unless a response already started) and closes. Remaining input
   * is read and dropped for a short while so the client sees the answer rather than a reset.
   *
   * `endTransaction`: a transaction is running and ends here. It is told what was sent before the
   * write (its access record and the transactions metric carry the status; the abort runs while
   * the generation, and its backends, are still held), and the answer is not a protocol error.
   * Without one, the answer is counted in protocol_errors_total: no transaction ran.
   */
  #rejectAndClose(status: number, istag?: string, endTransaction?: (answer: ErrorAnswer | null) => void): void {
    if (this.#phase === 'closing') {
      endTransaction?.(null);
      return;
    }
    this.#enter('closing');
    this.#decoder.pause();
    const answer = !this.#sink.started && !this.#socket.destroyed ? errorResponse(status, istag ?? this.#gen.registry.serverIstag) : null;
    if (endTransaction !== undefined) endTransaction(answer === null ? null : { status, bytes: answer.length });
    else if (answer !== null) this.#ctx.onRejected(status);
    this.#releaseGeneration();
    if (answer !== null) this.#socket.write(answer);
    this.#socket.resume();
    this.#endAndLinger();
  }

  /** The running transaction, if any, aborted with `reason` and the error answer sent in its place. */
  #aborting(reason: AbortReason): ((answer: ErrorAnswer | null) => void) | undefined {
    const txn = this.#txn;
    return txn === null ? undefined : (answer) => txn.abort(reason, answer);
  }

  /**
   * Ends our side, and destroys the socket LINGER_MS after the last byte was handed to the kernel.
   * allowHalfOpen keeps a socket open until the client ends its side too, and a client that never
   * does (hung, or it ignores FINs) would hold the connection, and a max_connections slot, for ever.
   * Timed from 'finish', not from now, so a slow client still gets the whole of a last answer;
   * one that takes none of it for write_idle_ms is destroyed then.
   */
  #endAndLinger(): void {
    const socket = this.#socket;
    if (socket.destroyed) return;
    if (!socket.writableEnded) socket.end();
    if (socket.writableFinished) {
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
      return;
    }
    const stalled = setTimeout(() => socket.destroy(), this.#gen.timeouts.writeIdleMs).unref();
    socket.once('finish', () => {
      clearTimeout(stalled);
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    });
  }

  /** The client took none of the answer for write_idle_ms: cut it (SendWatch, response-sink.ts). */
  #onSendStalled(idleMs: number): void {
    this.#log.warn({ write_idle_ms: idleMs, pending_bytes: this.#socket.writableLength }, 'send timeout: the client took none of the answer');
    this.#txn?.abort('send-timeout');
    this.#socket.destroy();
  }

  #enter(phase: Phase, now = performance.now()): void {
    this.#phase = phase;
    this.#phaseStarted = now;
    this.#lastBodyActivity = this.#phaseStarted;
    this.#armTimer();
  }

  #deadline(): number | null {
    const t = this.#gen.timeouts;
    switch (this.#phase) {
      case 'head':
        return this.#phaseStarted + t.headerMs;
      case 'body':
        return this.#lastBodyActivity + t.bodyIdleMs;
      case 'idle':
        return this.#phaseStarted + t.keepAliveMs;
      case 'processing':
      case 'closing':
        return null;
    }
  }

  /**
   * One timer per connection, re-armed lazily. A phase change or body activity only moves the
   * deadline; the armed timer stays if it fires no later than that, and on firing checks the deadline
   * and re-arms for what is left. So a keep-alive request (idle → head → processing → idle) costs no
   * timer operation at all, where clearing and setting one per phase was two of each per request.
   */
  #armTimer(): void {
    const deadline = this.#deadline();
    if (deadline === null) return; // an armed timer fires, finds no deadline and stops
    if (this.#timer !== null && this.#timerFiresAt <= deadline) return;
    this.#clearTimer();
    // Whole milliseconds: Node keeps one timer list per duration, so equal durations share a list.
    const delayMs = Math.max(1, Math.ceil(deadline - performance.now()));
    this.#timerFiresAt = performance.now() + delayMs;
    this.#timer = setTimeout(() => this.#onTimer(), delayMs);
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #onTimer(): void {
    this.#timer = null;
    const deadline = this.#deadline();
    if (deadline === null) return;
    if (performance.now() < deadline) {
      this.#armTimer();
      return;
    }
    switch (this.#phase) {
      case 'idle':
        this.#log.debug('keep-alive timeout');
        this.#enter('closing');
        this.#endAndLinger();
        return;
      case 'head':
        this.#log.info({ timeout_ms: this.#gen.timeouts.headerMs }, 'header timeout');
        this.#rejectAndClose(408);
        return;
      case 'body':
        this.#log.info({ timeout_ms: this.#gen.timeouts.bodyIdleMs }, 'body idle timeout');
        this.#rejectAndClose(408, undefined, this.#aborting('body-timeout'));
        return;
    }
  }
}
