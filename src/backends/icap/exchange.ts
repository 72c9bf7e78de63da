/**
 * One request/answer exchange with an upstream ICAP server on one connection (RFC 3507 §4.5,
 * §4.8, §4.9; errata e7):
 *
 *   preview:  head + first `preview` bytes + "0; ieof" (the body fit) ──► final answer
 *             head + first `preview` bytes + "0" ──► 100 Continue ──► the rest + "0" ──► final answer
 *                                                └─► final answer (204, 200, 4xx/5xx): done, nothing more sent
 *   no preview: head + the whole body + "0" ──► final answer
 *
 * A final answer may start while we still send (errata e7). We read it and keep sending: a
 * server such as c-icap's virus_scan answers 200 early and echoes the body as it reads it, so
 * its answer ends only after our last chunk. Once the answer is complete we stop; if the request
 * was not finished by then, the connection is closed (e7: finish the request, or close). A 100
 * after `ieof` or without a preview is ignored (RFC Editor erratum 5893: some servers send one
 * anyway).
 *
 * The SHA-256 of the bytes sent and of the body that comes back tell an unchanged echo from a
 * modified message (answer-map.ts). The caller owns the connection and the reader; the signal
 * stops the exchange by destroying the connection.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  chunkHeader,
  CRLF,
  encodeLastChunk,
  encodeOptionsRequest,
  LAST_CHUNK,
  type HttpHead,
  type IcapResponseHead,
  type ResponseDecoderEvent,
} from '../../../protocol/index.js';
import type { SentMessage, UpstreamAnswer } from './answer-map.js';
import type { BodyReader } from './body-source.js';
import type { ConnectionListener, IcapConnection } from './icap-connection.js';

export interface ExchangeRequest {
  /** The encoded ICAP head, encapsulated HTTP heads included. */
  readonly head: Buffer;
  readonly method: 'REQMOD' | 'RESPMOD';
  /** The start line of the HTTP head that goes with the body, to compare an echo against. */
  readonly startLine: string | null;
  /** Preview size announced in `head`; null = none. */
  readonly preview: number | null;
  /** False when `head` says null-body. */
  readonly hasBody: boolean;
}

export type ExchangeResult =
  | {
      readonly ok: true;
      readonly answer: UpstreamAnswer;
      readonly sent: SentMessage;
      /** The request and the answer were both complete and well framed; the connection may be reused. */
      readonly reusable: boolean;
    }
  | {
      readonly ok: false;
      /** 'connection': the upstream or the network failed; 'body': reading our own body failed. */
      readonly cause: 'connection' | 'body';
      readonly message: string;
      /** Some answer bytes had arrived (so this was not a stale idle connection closing). */
      readonly answerStarted: boolean;
    };

type Decision = 'continue' | 'final' | 'failed';

/** Collects the answer as the decoder reports it; one per exchange. */
class AnswerWatcher implements ConnectionListener {
  answerStarted = false;
  head: IcapResponseHead | null = null;
  readonly httpHeads: HttpHead[] = [];
  #bodyHash: Hash | null = null;
  #bodyBytes = 0;
  /** Set once the final answer is complete. */
  body: UpstreamAnswer['body'] = null;
  failure: string | null = null;
  #continued = false;
  #decisionWaiters: ((d: Decision) => void)[] = [];
  /** Settles when the final answer is complete (true) or the exchange failed (false). */
  readonly done: Promise<boolean>;
  #resolveDone!: (ok: boolean) => void;
  /**
   * Settles with `done`, as 'interrupted': stops whatever we wait on while sending. Not at the
   * final head: an answer that is still coming may need the rest of the body (errata e7).
   */
  readonly interrupted: Promise<'interrupted'>;
  #complete = false;

  constructor() {
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    this.interrupted = this.done.then(() => 'interrupted');
  }

  get finalSeen(): boolean {
    return this.head !== null;
  }

  /** The answer is complete or the exchange failed: nothing more needs sending. */
  get settled(): boolean {
    return this.#complete || this.failure !== null;
  }

  onEvent(e: ResponseDecoderEvent): void {
    this.answerStarted = true;
    if (this.#complete) {
      // A second answer to one request: the framing is lost; reading on would misattribute it.
      this.onFailure('the upstream sent more than one final answer');
      return;
    }
    switch (e.type) {
      case 'response-head':
        if (e.head.status === 100) {
          this.#continued = true;
          this.#decide('continue');
          return;
        }
        this.head = e.head;
        this.#decide('final');
        return;
      case 'http-head':
        if (this.head !== null) this.httpHeads.push(e.head);
        return;
      case 'headers-end':
        if (this.head !== null && e.body !== null) this.#bodyHash = createHash('sha256');
        return;
      case 'body':
        this.#bodyHash?.update(e.data);
        this.#bodyBytes += e.data.length;
        return;
      case 'body-end':
        return;
      case 'message-end':
        // The end of a 100 Continue is not the end of the exchange.
        if (this.head === null) return;
        this.#complete = true;
        this.body = this.#bodyHash === null ? null : { bytes: this.#bodyBytes, sha256: this.#bodyHash.digest('hex') };
        this.#resolveDone(true);
        return;
    }
  }

  onFailure(message: string): void {
    if (this.failure !== null || this.#complete) return;
    this.failure = message;
    this.#decide('failed');
    this.#resolveDone(false);
  }

  /** After a preview without ieof: 100 Continue, a final answer, or a failure. */
  decision(): Promise<Decision> {
    if (this.failure !== null) return Promise.resolve('failed');
    if (this.head !== null) return Promise.resolve('final');
    if (this.#continued) return Promise.resolve('continue');
    return new Promise((resolve) => this.#decisionWaiters.push(resolve));
  }

  #decide(d: Decision): void {
    const waiters = this.#decisionWaiters;
    this.#decisionWaiters = [];
    for (const w of waiters) w(d);
  }
}

class BodyReadError extends Error {}

export async function runExchange(conn: IcapConnection, req: ExchangeRequest, reader: BodyReader, signal: AbortSignal): Promise<ExchangeResult> {
  const watcher = new AnswerWatcher();
  const sentHash = createHash('sha256');
  let sentBytes = 0;
  /** Every body byte reached the upstream. */
  let complete = false;
  /** The request is finished on the wire (the whole body, or a final answer to the preview). */
  let requestDone = false;

  const onAbort = (): void => conn.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  conn.bind(watcher);
  if (signal.aborted) conn.destroy();

  /** The next body chunk, unless the whole answer or a failure comes first. */
  const nextChunk = async (): Promise<Buffer | null | 'interrupted'> => {
    try {
      return await Promise.race([reader.next(), watcher.interrupted]);
    } catch (err) {
      throw new BodyReadError(err instanceof Error ? err.message : String(err));
    }
  };

  const sendChunk = async (data: Buffer): Promise<void> => {
    sentHash.update(data);
    sentBytes += data.length;
    if (!conn.write(chunkHeader(data.length), data, CRLF)) await Promise.race([conn.drained(), watcher.interrupted]);
  };

  /** After the preview (or without one): the rest of the body, then the last chunk. */
  const sendRest = async (leftover: Buffer | null): Promise<void> => {
    if (leftover !== null && leftover.length > 0) await sendChunk(leftover);
    for (;;) {
      // errata e7: an answer that is already complete needs no more of the body.
      if (watcher.settled) return;
      const chunk = await nextChunk();
      if (chunk === 'interrupted') return;
      if (chunk === null) {
        conn.write(LAST_CHUNK);
        complete = true;
        requestDone = true;
        return;
      }
      if (chunk.length > 0) await sendChunk(chunk);
    }
  };

  try {
    if (!req.hasBody) {
      conn.write(req.head);
      complete = true;
      requestDone = true;
    } else if (req.preview !== null) {
      // §4.5: up to `preview` bytes, and we must know whether the body ends within them (ieof),
      // so read until there is one byte more than the preview, or the end.
      const parts: Buffer[] = [];
      let have = 0;
      let eof = false;
      while (have <= req.preview) {
        const chunk = await nextChunk();
        if (chunk === 'interrupted') break;
        if (chunk === null) {
          eof = true;
          break;
        }
        parts.push(chunk);
        have += chunk.length;
      }
      // Anything before our request was even sent is a broken peer; the answer collected decides.
      if (watcher.failure === null && !watcher.finalSeen) {
        const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        const preview = all.subarray(0, req.preview);
        const leftover = all.subarray(preview.length);
        sentHash.update(preview);
        sentBytes += preview.length;
        const pieces = [req.head];
        if (preview.length > 0) pieces.push(chunkHeader(preview.length), preview, CRLF);
        pieces.push(eof ? encodeLastChunk('ieof') : LAST_CHUNK);
        conn.write(...pieces);
        if (eof) {
          complete = true;
          requestDone = true;
        } else {
          const decision = await watcher.decision();
          // §4.5: a final answer to the preview ends the request; nothing more is sent.
          if (decision === 'final') requestDone = true;
          else if (decision === 'continue') await sendRest(leftover);
        }
      }
    } else {
      conn.write(req.head);
      await sendRest(null);
    }
    const ok = await watcher.done;
    if (!ok || watcher.head === null) {
      return { ok: false, cause: 'connection', message: watcher.failure ?? 'no answer', answerStarted: watcher.answerStarted };
    }
    const head = watcher.head;
    const closing = head.headers.tokens('Connection').has('close');
    return {
      ok: true,
      answer: { status: head.status, reason: head.reason, headers: head.headers, rawHead: head.raw, httpHeads: watcher.httpHeads, body: watcher.body },
      sent: { method: req.method, startLine: req.startLine, bodyBytes: sentBytes, bodySha256: sentHash.digest('hex'), complete },
      reusable: requestDone && !closing,
    };
  } catch (err) {
    if (err instanceof BodyReadError) {
      conn.destroy();
      return { ok: false, cause: 'body', message: `reading the body failed: ${err.message}`, answerStarted: watcher.answerStarted };
    }
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    conn.unbind();
  }
}

export type OptionsResult = { readonly ok: true; readonly head: IcapResponseHead } | { readonly ok: false; readonly message: string };

/** An OPTIONS exchange (§4.10); a body, if the server sends one (errata e1), is read and dropped. */
export async function runOptions(conn: IcapConnection, uri: string, host: string, signal: AbortSignal): Promise<OptionsResult> {
  const watcher = new AnswerWatcher();
  const onAbort = (): void => conn.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  conn.bind(watcher);
  if (signal.aborted) conn.destroy();
  try {
    conn.write(encodeOptionsRequest({ uri, host, headers: [['User-Agent', 'icap-bridge']] }));
    const ok = await watcher.done;
    if (!ok || watcher.head === null) return { ok: false, message: watcher.failure ?? 'no answer to OPTIONS' };
    return { ok: true, head: watcher.head };
  } finally {
    signal.removeEventListener('abort', onAbort);
    conn.unbind();
  }
}
