/**
 * Direct clamd INSTREAM load (shared/specs/clamd-protocol.md §3): the backend limit the bridge's
 * clamd path is measured against. C clients, each in a closed loop: connect, `zINSTREAM\0`, the
 * body as 64 KiB chunks (4-byte big-endian length + data), a zero-length chunk, read the reply up
 * to NUL, close (clamd answers one scan per connection outside a session, and the bridge's clamd
 * backend also opens one connection per scan). The whole stream is built once and written in one
 * call per scan. Latency runs from connect to the start of the turn that read the reply, as in the
 * generator (bench/lib/io-turn-clock.ts); results use the generator's LoadResult shape so the report
 * treats clamd as one more target.
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { LoadResult } from '../loadgen.js';
import { ioTurnStart } from './io-turn-clock.js';
import { cleanBody } from './scenarios.js';
import { SampleBuffer, latencySummaryMs, round } from './stats.js';

export interface InstreamLoadOptions {
  /** A UNIX socket path, or host:port. */
  endpoint: string;
  connections: number;
  bodyBytes: number;
  durationS: number;
  warmupS: number;
  /** A scan with no reply after this long counts as a timeout and its connection is dropped. */
  requestTimeoutMs: number;
}

const CHUNK = 64 * 1024;

/** The bytes of one INSTREAM scan of `body`. */
export function instreamBytes(body: Buffer, chunk = CHUNK): Buffer {
  const parts: Buffer[] = [Buffer.from('zINSTREAM\0', 'latin1')];
  for (let at = 0; at < body.length; at += chunk) {
    const piece = body.subarray(at, Math.min(at + chunk, body.length));
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(piece.length, 0);
    parts.push(len, piece);
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

function connectOptions(endpoint: string): net.NetConnectOpts {
  if (endpoint.startsWith('/')) return { path: endpoint };
  const at = endpoint.lastIndexOf(':');
  return { host: endpoint.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(endpoint.slice(at + 1)) };
}

export function runInstreamLoad(o: InstreamLoadOptions): Promise<LoadResult> {
  const payload = instreamBytes(cleanBody(o.bodyBytes));
  const target = connectOptions(o.endpoint);
  const latencies = new SampleBuffer();
  const queueDelays = new SampleBuffer();
  const replies = new Map<string, number>();
  const errors = { status: 0, socket: 0, timeout: 0, framing: 0 };
  let firstError: string | null = null;
  let phase: 'warmup' | 'measure' | 'done' = 'warmup';
  let ok = 0;
  let requests = 0;
  let bytesSent = 0;
  let t0 = 0;
  let t1 = 0;
  let cpu0: NodeJS.CpuUsage = { user: 0, system: 0 };
  let cpu: NodeJS.CpuUsage = { user: 0, system: 0 };
  let elu0 = performance.eventLoopUtilization();
  let elu = 0;
  let active = 0;

  return new Promise((resolve) => {
    const finish = (): void => {
      const sorted = latencies.sorted();
      const windowS = Math.max((t1 - t0) / 1000, 1e-6);
      const cpuUs = cpu.user + cpu.system;
      resolve({
        tool: 'icap-bridge-bench/loadgen',
        scenario: 'respmod-1m',
        preview: null,
        target: { host: o.endpoint, port: 0, service: 'INSTREAM' },
        connections: o.connections,
        mode: 'duration',
        warmupS: o.warmupS,
        durationS: round(windowS, 3),
        requests,
        ok,
        rps: round(ok / windowS, 1),
        latencyMs: latencySummaryMs(sorted),
        generatorQueueMs: latencySummaryMs(queueDelays.sorted()),
        errors: { total: errors.status + errors.socket + errors.timeout + errors.framing, ...errors },
        statuses: Object.fromEntries(replies),
        bytes: { sent: bytesSent, received: 0 },
        reconnects: 0,
        cpu: {
          userMs: round(cpu.user / 1000, 1),
          systemMs: round(cpu.system / 1000, 1),
          percentOfOneCore: round((cpuUs / 1000 / ((t1 - t0) || 1)) * 100, 1),
          usPerRequest: round(requests > 0 ? cpuUs / requests : Number.NaN, 2),
          eventLoopUtilization: round(elu, 3),
        },
        firstError,
      });
    };

    const scanOnce = (): void => {
      if (phase === 'done') {
        if (--active === 0) finish();
        return;
      }
      const started = performance.now();
      const counted = phase === 'measure';
      let reply = '';
      let replyTurnAt = 0;
      let settled = false;
      const socket = net.connect(target);
      const timer = setTimeout(() => settle('timeout', new Error(`no reply within ${o.requestTimeoutMs} ms`)), o.requestTimeoutMs);
      function settle(kind: 'ok' | 'socket' | 'timeout', err?: Error): void {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        // Only scans started and ended inside the window count.
        if (counted && phase === 'measure') {
          requests++;
          if (kind === 'ok') {
            const text = reply.replace(/\0.*$/s, '');
            replies.set(text, (replies.get(text) ?? 0) + 1);
            if (text.endsWith(' OK')) {
              ok++;
              latencies.push(replyTurnAt - started);
              queueDelays.push(performance.now() - replyTurnAt);
            } else {
              errors.status++;
              firstError ??= `clamd replied ${JSON.stringify(text)}`;
            }
          } else {
            errors[kind]++;
            firstError ??= `${kind}: ${err?.message ?? ''}`;
          }
        }
        setImmediate(scanOnce);
      }
      socket.on('connect', () => {
        socket.write(payload);
        if (counted) bytesSent += payload.length;
      });
      socket.on('data', (d: Buffer) => {
        replyTurnAt = ioTurnStart();
        reply += d.toString('latin1');
        if (reply.includes('\0')) settle('ok');
      });
      socket.on('error', (err) => settle('socket', err));
      socket.on('close', () => settle('socket', new Error(`closed before a reply (${JSON.stringify(reply)})`)));
    };

    setTimeout(() => {
      phase = 'measure';
      t0 = performance.now();
      cpu0 = process.cpuUsage();
      elu0 = performance.eventLoopUtilization();
      setTimeout(() => {
        t1 = performance.now();
        cpu = process.cpuUsage(cpu0);
        elu = performance.eventLoopUtilization(elu0).utilization;
        phase = 'done';
      }, o.durationS * 1000);
    }, o.warmupS * 1000);
    for (let i = 0; i < o.connections; i++) {
      active++;
      scanOnce();
    }
  });
}
