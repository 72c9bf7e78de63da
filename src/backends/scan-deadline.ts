/**
 * One signal for a scan: the caller's abort (client gone), the backend's own timeout, or any
 * other reason to stop (the backend closing), whichever comes first — and a way to tell whether
 * it was the timeout, which maps to the 'timeout' outcome rather than an abort.
 */
export interface ScanDeadline {
  readonly signal: AbortSignal;
  timedOut(): boolean;
  /** Stops the timer early (the scan finished); listeners die with the signals. */
  clear(): void;
}

export function scanDeadline(timeoutMs: number, ...signals: AbortSignal[]): ScanDeadline {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new Error(`scan timed out after ${timeoutMs} ms`)), timeoutMs);
  timer.unref();
  return {
    signal: AbortSignal.any([timeout.signal, ...signals]),
    timedOut: () => timeout.signal.aborted,
    clear: () => clearTimeout(timer),
  };
}
