/**
 * bench/native/icap-native.c from TypeScript: built on demand with the machine's C compiler, run as
 * the load generator (runNativeLoad, a LoadResult like bench/loadgen.ts's) or as the trivial
 * responder of --ceiling (startNativeResponder).
 *
 * Why a native generator at all: BENCHMARKS.md, Session 16. In short, the Node.js generator's CPU
 * per request (~12 µs) on a 2-core machine shared with the server held c-icap back (its event loop
 * saturated against c-icap) and could not show 2× headroom; this one costs 6–10 µs per small
 * request (more when it reads an echoed body), about 90 % of it the kernel's loopback TCP (Session 25).
 *
 * The binary goes to bench/native/build/ (git-ignored), rebuilt when the source is newer.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadOptions, LoadResult } from '../loadgen.js';
import { buildScenario } from './scenarios.js';
import { round } from './stats.js';

const NATIVE_DIR = resolve(import.meta.dirname, '..', 'native');
const SOURCE = join(NATIVE_DIR, 'icap-native.c');
export const NATIVE_BINARY = join(NATIVE_DIR, 'build', 'icap-native');

/** What `icap-native load` prints (one JSON object). */
export interface NativeLoadOutput {
  durationS: number;
  requests: number;
  ok: number;
  latencyMs: LoadResult['latencyMs'];
  generatorQueueMs: LoadResult['generatorQueueMs'];
  cycleMs: NonNullable<LoadResult['cycleMs']>;
  /** Open loop (--rate): from each request's scheduled time to its write; all zero in the closed loop. */
  sendLagMs: LoadResult['latencyMs'];
  /** Open loop (--rate): latency from each request's scheduled time; all zero in the closed loop. */
  latencyFromDueMs: LoadResult['latencyMs'];
  /** --rate, requests per second; 0 in the closed loop. */
  offeredRate: number;
  errors: { status: number; socket: number; timeout: number; framing: number };
  statuses: Record<string, number>;
  bytesSent: number;
  bytesReceived: number;
  userMs: number;
  systemMs: number;
  /** Share of the window the loop was not waiting in epoll_wait: the event-loop utilization's counterpart. */
  busy: number;
  firstError: string | null;
}

/** Compiles the tool unless an up-to-date binary exists; throws with the compiler's message. */
export function buildNativeTools(log: (line: string) => void = () => {}): string {
  if (existsSync(NATIVE_BINARY) && statSync(NATIVE_BINARY).mtimeMs >= statSync(SOURCE).mtimeMs) return NATIVE_BINARY;
  mkdirSync(join(NATIVE_DIR, 'build'), { recursive: true });
  const cc = process.env.CC ?? 'cc';
  log(`building ${NATIVE_BINARY} with ${cc}`);
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', NATIVE_BINARY, SOURCE], { encoding: 'utf8', timeout: 120_000 });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error !== undefined ? `${r.error.message} (install a C compiler: apt-get install gcc)` : r.stderr;
    throw new Error(`cannot build ${SOURCE} with ${cc}: ${why}`);
  }
  return NATIVE_BINARY;
}

/** Whether `rate` is an open loop's rate `icap-native load --rate` takes: whole requests per second, 1 to 10 million. */
export function isOfferedRate(rate: number): boolean {
  return Number.isInteger(rate) && rate >= 1 && rate <= 10_000_000;
}

/**
 * Runs the native generator with the same options as bench/loadgen.ts's runLoad (IPv4 hosts only).
 * With `offeredRate` it is an open loop on a fixed schedule, which only this generator has.
 * `onWindow` (lining up generator threads) and `traceOut` (bench/tail-vs-gc.ts) are bench/loadgen.ts's
 * alone: refused here rather than silently ignored.
 */
export async function runNativeLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.onWindow !== undefined || opts.traceOut !== undefined) throw new Error('onWindow and traceOut need bench/loadgen.ts (--generator node)');
  if (opts.offeredRate !== undefined && !isOfferedRate(opts.offeredRate)) {
    throw new RangeError(`offeredRate must be an integer in [1, 10000000] requests/s, got ${opts.offeredRate}`);
  }
  const binary = buildNativeTools();
  const target = { host: opts.host, port: opts.port, service: opts.service };
  const built = buildScenario(opts.scenario, target, { preview: opts.preview });
  const dir = mkdtempSync(join(tmpdir(), 'icap-native-load-'));
  try {
    const requestFile = join(dir, 'request');
    const args = ['load', '--host', opts.host, '--port', String(opts.port), '--request', requestFile];
    if (built.preview !== null) {
      writeFileSync(requestFile, built.preview.first);
      if (built.preview.rest !== null) {
        writeFileSync(join(dir, 'rest'), built.preview.rest);
        args.push('--rest', join(dir, 'rest'));
      }
    } else {
      writeFileSync(requestFile, built.full);
    }
    args.push('--connections', String(opts.connections), '--duration', String(opts.durationS), '--warmup', String(opts.warmupS));
    args.push('--timeout-ms', String(opts.requestTimeoutMs));
    if (opts.offeredRate !== undefined) args.push('--rate', String(opts.offeredRate));
    const out = await runToEnd(binary, args, (opts.maxSeconds + 10) * 1000);
    return toLoadResult(opts, JSON.parse(out) as NativeLoadOutput);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function toLoadResult(opts: LoadOptions, n: NativeLoadOutput): LoadResult {
  const cpuMs = n.userMs + n.systemMs;
  const summary = (s: NativeLoadOutput['latencyMs']): LoadResult['latencyMs'] => ({
    p50: round(s.p50, 3),
    p90: round(s.p90, 3),
    p99: round(s.p99, 3),
    max: round(s.max, 3),
    mean: round(s.mean, 3),
  });
  const total = n.errors.status + n.errors.socket + n.errors.timeout + n.errors.framing;
  return {
    tool: 'icap-bridge-bench/loadgen',
    scenario: opts.scenario,
    preview: opts.preview ?? null,
    target: { host: opts.host, port: opts.port, service: opts.service },
    connections: opts.connections,
    mode: 'duration',
    warmupS: opts.warmupS,
    durationS: round(n.durationS, 3),
    requests: n.requests,
    ok: n.ok,
    rps: round(n.durationS > 0 ? n.ok / n.durationS : 0, 1),
    latencyMs: summary(n.latencyMs),
    generatorQueueMs: summary(n.generatorQueueMs),
    cycleMs: summary(n.cycleMs),
    ...(n.offeredRate > 0 ? { openLoop: { offeredRate: n.offeredRate, latencyFromDueMs: summary(n.latencyFromDueMs), sendLagMs: summary(n.sendLagMs) } } : {}),
    errors: { total, ...n.errors },
    statuses: n.statuses,
    bytes: { sent: n.bytesSent, received: n.bytesReceived },
    reconnects: 0,
    cpu: {
      userMs: round(n.userMs, 1),
      systemMs: round(n.systemMs, 1),
      percentOfOneCore: round(n.durationS > 0 ? cpuMs / (n.durationS * 10) : 0, 1),
      usPerRequest: round(n.requests > 0 ? (cpuMs * 1000) / n.requests : 0, 2),
      eventLoopUtilization: round(n.busy, 3),
    },
    firstError: n.firstError,
  };
}

/** Runs the binary to its end (bounded by `timeoutMs`, then SIGKILL by PID); its stdout. */
function runToEnd(binary: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`icap-native ${args[0]} exited with ${code ?? signal}: ${err.trim()}`));
    });
  });
}

/** Starts `icap-native respond` on 127.0.0.1:port; resolves once it listens. Stop it by its PID. */
export async function startNativeResponder(port: number): Promise<ChildProcess> {
  const binary = buildNativeTools();
  const child = spawn(binary, ['respond', '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 100 && !out.includes('listening') && child.exitCode === null; i++) await sleep(50);
  if (!out.includes('listening')) {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    throw new Error(`icap-native respond did not start on port ${port}`);
  }
  return child;
}
