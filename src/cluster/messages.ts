/**
 * The IPC messages between the cluster primary and its workers (node:cluster's channel). Every
 * type starts with "icap-bridge:" so prom-client's own metrics messages on the same channel
 * (prom-client:getMetricsReq/Res) pass by untouched.
 *
 * A worker says hello once it listens for messages (a message sent before that would be lost) and
 * the primary answers with the configuration to run, or with stop if it is stopping. The
 * configuration travels as the validated object, not as a path to read: the file on disk may have
 * changed since, or be invalid (a rejected reload), and list files were read when it was loaded.
 * It is plain data (strings, numbers, booleans, arrays, objects), so the channel's JSON keeps it whole.
 * The other files it names (block pages, hash lists, certificates) come as the paths of the
 * primary's copies of them (`files`, file-snapshots.ts), for the same reason.
 */
import type { Registry } from 'prom-client';
import type { Config } from '../config/index.js';
import type { Readiness } from '../observability/admin-server.js';
import type { FileCopies } from './config-files.js';

/** One metric of a worker's registry as prom-client's getMetricsAsJSON() gives it (functions dropped by IPC). */
export type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

/** Primary → worker. */
export type ToWorker =
  | { readonly type: 'icap-bridge:config'; readonly config: Config; readonly files: FileCopies }
  | { readonly type: 'icap-bridge:reload'; readonly requestId: number; readonly config: Config; readonly files: FileCopies }
  | { readonly type: 'icap-bridge:stop'; readonly graceMs: number }
  | { readonly type: 'icap-bridge:readiness'; readonly requestId: number }
  | { readonly type: 'icap-bridge:metrics'; readonly requestId: number }
  /** Hold log writes until log-resume; answer log-paused once none is in flight (log-destination.ts). */
  | { readonly type: 'icap-bridge:log-pause'; readonly requestId: number }
  | { readonly type: 'icap-bridge:log-resume' };

/** Worker → primary. */
export type ToPrimary =
  | { readonly type: 'icap-bridge:hello' }
  | { readonly type: 'icap-bridge:ready'; readonly istags: Record<string, string> }
  | { readonly type: 'icap-bridge:reloaded'; readonly requestId: number; readonly ok: boolean; readonly istags: Record<string, string> }
  | { readonly type: 'icap-bridge:readiness'; readonly requestId: number; readonly readiness: Readiness }
  | { readonly type: 'icap-bridge:metrics'; readonly requestId: number; readonly metrics: MetricJson[] }
  /** A log line too long for one atomic write to a shared pipe: the primary writes it (log-destination.ts). */
  | { readonly type: 'icap-bridge:log-line'; readonly line: string }
  | { readonly type: 'icap-bridge:log-paused'; readonly requestId: number };

/** The answers the primary waits for, by request id. */
export type Reply = Extract<ToPrimary, { requestId: number }>;

const TO_WORKER = new Set([
  'icap-bridge:config',
  'icap-bridge:reload',
  'icap-bridge:stop',
  'icap-bridge:readiness',
  'icap-bridge:metrics',
  'icap-bridge:log-pause',
  'icap-bridge:log-resume',
]);
const TO_PRIMARY = new Set([
  'icap-bridge:hello',
  'icap-bridge:ready',
  'icap-bridge:reloaded',
  'icap-bridge:readiness',
  'icap-bridge:metrics',
  'icap-bridge:log-line',
  'icap-bridge:log-paused',
]);

function typeOf(message: unknown): unknown {
  return message !== null && typeof message === 'object' ? (message as { type?: unknown }).type : undefined;
}

export function isToWorker(message: unknown): message is ToWorker {
  return TO_WORKER.has(typeOf(message) as string);
}

export function isToPrimary(message: unknown): message is ToPrimary {
  return TO_PRIMARY.has(typeOf(message) as string);
}
