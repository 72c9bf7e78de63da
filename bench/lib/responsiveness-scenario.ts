/**
 * Scenario `options-during-1g` (issue 6, "Responsiveness"): one connection sends a RESPMOD with a
 * 1 GiB body (bench/lib/big-body.ts, `Allow: 204`) while a second connection sends OPTIONS one
 * after another, pausing 20 ms between them (as test/integration/large-body.test.ts does), from
 * the moment the big request's head is written until its answer arrives. Latency is from the
 * OPTIONS write to the end of its answer; a probe without an answer within 5 s counts as 5 s and
 * as a failure.
 *
 * With several server processes the two connections may land on different processes, so the
 * figure is then the cluster's, not one event loop's.
 *
 * Pass: the big request answered with the expected status, every probe answered 200, p99 < 50 ms.
 */
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

import { PIECE_BYTES, sendBigRespmod } from './big-body.js';
import { FramingError, IcapMessageScanner } from './framing.js';
import { spoolFilesAfter } from './memory-scenario.js';
import { buildOptions } from './scenarios.js';
import { percentile } from './stats.js';

export const RESPONSIVENESS_SCENARIO = 'options-during-1g';
export const OPTIONS_P99_BUDGET_MS = 50;
const PROBE_PAUSE_MS = 20;
const PROBE_TIMEOUT_MS = 5000;

export interface ResponsivenessOptions {
  host: string;
  port: number;
  /** Service of the big RESPMOD (OPTIONS go to the same service). */
  service: string;
  /** 204 for icap-bridge; c-icap's echo answers 200 with the body. */
  expectStatus: number;
  /** Spool to check afterwards (icap-bridge), or null. */
  spoolDir: string | null;
  bodyBytes?: number;
  timeoutMs?: number;
}

export interface ResponsivenessResult {
  scenario: typeof RESPONSIVENESS_SCENARIO;
  service: string;
  bodyBytes: number;
  bigStatus: number;
  expectStatus: number;
  bigError: string | null;
  wallSeconds: number;
  mibPerSecond: number;
  probes: number;
  /** Probes without a 200 answer within PROBE_TIMEOUT_MS, or with a broken one. */
  probeFailures: number;
  firstProbeError: string | null;
  latencyMs: { p50: number; p99: number; max: number };
  /** null when no spool was checked. */
  spoolFilesLeft: number | null;
  budgetMs: number;
  ok: boolean;
  pass: boolean;
}

/** One persistent connection sending OPTIONS one at a time; reconnects if the server closed it. */
class OptionsProber {
  readonly #host: string;
  readonly #port: number;
  readonly #request: Buffer;
  #socket: net.Socket | null = null;
  #waiting: ((outcome: number | Error) => void) | null = null;
  readonly #scanner = new IcapMessageScanner('response', { onMessage: (h) => this.#settle(h.status) });

  constructor(host: string, port: number, service: string) {
    this.#host = host;
    this.#port = port;
    this.#request = buildOptions({ host, port, service }).full;
  }

  #settle(outcome: number | Error): void {
    const w = this.#waiting;
    this.#waiting = null;
    w?.(outcome);
  }

  #connect(): net.Socket {
    const s = net.connect({ host: this.#host, port: this.#port });
    s.setNoDelay(true);
    this.#scanner.reset();
    s.on('data', (d: Buffer) => {
      try {
        this.#scanner.feed(d);
      } catch (err) {
        this.#settle(err instanceof FramingError ? err : new Error(String(err)));
        s.destroy();
      }
    });
    s.on('error', (err) => this.#settle(err));
    s.on('close', () => {
      if (this.#socket === s) this.#socket = null;
      this.#settle(new Error('connection closed before the OPTIONS answer'));
    });
    return s;
  }

  /** Sends one OPTIONS; resolves with its status, or rejects (error, close, timeout). */
  async once(): Promise<number> {
    this.#socket ??= this.#connect();
    const answer = new Promise<number | Error>((resolve) => (this.#waiting = resolve));
    this.#socket.write(this.#request);
    const timer = setTimeout(() => this.#settle(new Error(`no OPTIONS answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
    const outcome = await answer;
    clearTimeout(timer);
    if (outcome instanceof Error) {
      this.close(); // a late answer must not be taken for the next probe's
      throw outcome;
    }
    return outcome;
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = null;
  }
}

export async function runResponsivenessScenario(o: ResponsivenessOptions): Promise<ResponsivenessResult> {
  const bodyBytes = o.bodyBytes ?? 1024 * PIECE_BYTES;
  const timeoutMs = o.timeoutMs ?? 300_000;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(`${RESPONSIVENESS_SCENARIO} timed out after ${timeoutMs / 1000} s`), timeoutMs);
  const latencies: number[] = [];
  let probeFailures = 0;
  let firstProbeError: string | null = null;
  let inFlight = false;
  let bigDone = false;
  const prober = new OptionsProber(o.host, o.port, o.service);

  const probing = async (): Promise<void> => {
    while (!bigDone) {
      const t0 = performance.now();
      try {
        const status = await prober.once();
        latencies.push(performance.now() - t0);
        if (status !== 200) {
          probeFailures++;
          firstProbeError ??= `OPTIONS answered ${status}`;
        }
      } catch (err) {
        latencies.push(performance.now() - t0);
        probeFailures++;
        firstProbeError ??= (err as Error).message;
      }
      await sleep(PROBE_PAUSE_MS);
    }
  };

  let probeLoop: Promise<void> = Promise.resolve();
  const started = performance.now();
  const big = await sendBigRespmod({
    host: o.host,
    port: o.port,
    service: o.service,
    bodyBytes,
    signal: abort.signal,
    onStarted: () => {
      inFlight = true;
      probeLoop = probing();
    },
  }).finally(() => {
    bigDone = true;
    clearTimeout(timer);
  });
  const wallSeconds = (performance.now() - started) / 1000;
  await probeLoop;
  prober.close();
  const spoolFilesLeft = o.spoolDir === null ? null : await spoolFilesAfter(o.spoolDir);

  const sorted = latencies.sort((a, b) => a - b);
  const ms = (v: number): number => (Number.isFinite(v) ? Math.round(v * 100) / 100 : Number.NaN);
  const p99 = ms(percentile(sorted, 0.99));
  const bigError = big.error ?? (inFlight ? null : 'the big request never started');
  const ok = big.status === o.expectStatus && bigError === null && probeFailures === 0 && sorted.length > 0 && (spoolFilesLeft ?? 0) === 0;
  return {
    scenario: RESPONSIVENESS_SCENARIO,
    service: o.service,
    bodyBytes,
    bigStatus: big.status,
    expectStatus: o.expectStatus,
    bigError,
    wallSeconds: Math.round(wallSeconds * 10) / 10,
    mibPerSecond: Math.round(Math.min(big.bodyBytesSent, bodyBytes) / PIECE_BYTES / wallSeconds),
    probes: sorted.length,
    probeFailures,
    firstProbeError,
    latencyMs: { p50: ms(percentile(sorted, 0.5)), p99, max: ms(sorted.at(-1) ?? Number.NaN) },
    spoolFilesLeft,
    budgetMs: OPTIONS_P99_BUDGET_MS,
    ok,
    pass: ok && p99 < OPTIONS_P99_BUDGET_MS,
  };
}
