/**
 * Jobs (specs/metadefender-core-api.md §3 Cancel) and batches (§7 cancel) that a Core server
 * accepted and that have not ended, so that each one given up is cancelled on its server exactly
 * once: by the scan that abandons it (deadline, abort, an answer it cannot use, a server it lost),
 * or by close(), whichever comes first. A job that finished, or that its server no longer knows
 * (§3 "Not Found", §9), is settled instead: there is nothing left to cancel.
 *
 * A cancel is best effort: bounded by CANCEL_TIMEOUT_MS, never awaited by a scan, failures
 * ignored. Only close() waits for the cancels in flight, so that disposing the servers' HTTP pools
 * does not cut them off.
 */

export const CANCEL_TIMEOUT_MS = 2_000;

export interface OpenJob {
  /** The job is given up: its cancel is sent, unless one was sent already or the job settled. */
  cancel(): void;
  /** The job finished, or its server no longer knows it: no cancel will be sent. */
  settle(): void;
}

export class OpenJobs {
  readonly #open = new Set<() => void>();
  readonly #sending = new Set<Promise<void>>();

  /** A job just accepted; `send` posts its cancel to the server that accepted it (§9). */
  track(send: (signal: AbortSignal) => Promise<unknown>): OpenJob {
    let ended = false;
    const cancel = (): void => {
      if (ended) return;
      ended = true;
      this.#open.delete(cancel);
      const sent = send(AbortSignal.timeout(CANCEL_TIMEOUT_MS)).then(
        () => {},
        () => {},
      );
      this.#sending.add(sent);
      void sent.then(() => this.#sending.delete(sent));
    };
    this.#open.add(cancel);
    return {
      cancel,
      settle: () => {
        ended = true;
        this.#open.delete(cancel);
      },
    };
  }

  /** Jobs accepted and not ended. */
  get size(): number {
    return this.#open.size;
  }

  /** At close: cancels every open job now; resolves once every cancel sent has ended (each is bounded). */
  async cancelAll(): Promise<void> {
    for (const cancel of [...this.#open]) cancel();
    await Promise.all(this.#sending);
  }
}
