/**
 * Signals that arrive while a server process starts, before its role (a lone server, a cluster
 * primary, a cluster worker) has installed its own handlers. Without a listener, Node.js applies
 * the default action: SIGTERM, SIGINT and SIGHUP kill the process halfway through start-up (exit
 * 143, 130, 129), and a primary killed that way leaves workers that crash on the closed IPC
 * channel (EPIPE in cluster._getServer) with their spool directories behind.
 *
 * serve.ts holds them from its first line; each role calls release() in the same tick as it
 * installs its own handlers (signals are delivered through the event loop, so none falls in
 * between) and acts on what was held: the last stop signal stops it once it can stop cleanly; a
 * SIGHUP means "the file changed": the start may have read the file before the change, so the role
 * reloads once it is up (a worker ignores it: reloads come from its primary). Used by every role,
 * so it lives with the cluster code but loads nothing.
 */

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** What arrived while the signals were held. */
export interface HeldSignals {
  /** The last SIGTERM/SIGINT, or null. */
  readonly stop: StopSignal | null;
  /** Whether a SIGHUP came. */
  readonly reload: boolean;
}

export interface SignalHolder {
  /** Removes the holding handlers and says what arrived; call it where the role installs its own. */
  release(): HeldSignals;
}

export function holdSignals(): SignalHolder {
  let stop: StopSignal | null = null;
  let reload = false;
  const onStop = (signal: StopSignal): void => {
    stop = signal;
  };
  const onHup = (): void => {
    reload = true;
  };
  for (const s of STOP_SIGNALS) process.on(s, onStop);
  process.on('SIGHUP', onHup);
  let released = false;
  return {
    release() {
      if (!released) {
        released = true;
        for (const s of STOP_SIGNALS) process.off(s, onStop);
        process.off('SIGHUP', onHup);
      }
      return { stop, reload };
    },
  };
}
