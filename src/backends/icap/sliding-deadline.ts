/**
 * The deadline of a streaming scan. A body may take longer to arrive than any sensible scan
 * timeout (a slow upload), so `timeout_ms` is counted from the last sign of progress instead of
 * from the start: each body chunk written restarts it, and so does the end of the body, after
 * which the upstream has `timeout_ms` for its verdict. An upstream that stops taking bytes stops
 * the writes (backpressure), so the same timer catches it.
 */
import type { ScanDeadline } from '../scan-deadline.js';

export interface SlidingDeadline extends ScanDeadline {
  /** Progress: start counting again. */
  touch(): void;
}

export function slidingDeadline(timeoutMs: number, ...signals: AbortSignal[]): SlidingDeadline {
  const timeout = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let cleared = false;
  const arm = (): void => {
    if (timer !== null) clearTimeout(timer);
    if (timeout.signal.aborted || cleared) return;
    timer = setTimeout(() => timeout.abort(new Error(`no progress for ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  };
  arm();
  return {
    signal: AbortSignal.any([timeout.signal, ...signals]),
    timedOut: () => timeout.signal.aborted,
    touch: arm,
    clear: () => {
      cleared = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}
