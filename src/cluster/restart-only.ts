/**
 * Settings a reload accepts but does not apply: the listener and admin addresses and TLS (the
 * listeners are not rebound, the certificates not read again) and server.processes. A lone server
 * (main.ts, icap-server.ts) and a cluster primary warn the same way, with these functions. It
 * lives with the cluster code, which has the most of them, but loads nothing a server does not.
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { resolveProcessCount } from './process-count.js';

/** Whether `after` changes a listener or admin address, or a TLS setting, from `before`. */
export function listenersChanged(before: Config, after: Config): boolean {
  return JSON.stringify([before.server.listen, before.server.tls, before.admin]) !== JSON.stringify([after.server.listen, after.server.tls, after.admin]);
}

export function warnIfListenersChanged(logger: Logger, before: Config, after: Config): void {
  if (listenersChanged(before, after)) logger.warn('listener or admin addresses changed: they take effect on restart, not on reload');
}

export function warnIfProcessesChanged(logger: Logger, before: Config, after: Config): void {
  if (resolveProcessCount(after.server.processes) !== resolveProcessCount(before.server.processes)) {
    logger.warn({ processes: after.server.processes }, 'server.processes changed: it takes effect on restart, not on reload');
  }
}
