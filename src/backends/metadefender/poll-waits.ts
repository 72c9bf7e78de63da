/**
 * The waits between the polls of a job (specs/metadefender-core-api.md §3) and of a batch's status
 * (§7), shared so both behave alike: poll_initial_ms doubling up to poll_max_ms (§1 "Polling
 * cadence"), and after a busy answer that carries a Retry-After, at least that long once.
 *
 * §2 names no Retry-After; a balancer in front of Core (or a later Core) may send one on a 503, or
 * on a 429 taken like it. It is a floor for the next wait only, never past the scan's deadline,
 * and so never longer than a timer holds (a huge value would overflow setTimeout into 1 ms).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class PollWaits {
  readonly #maxMs: number;
  #delay: number;
  /** From the last busy answer: the next wait is at least this (0: none). */
  #floor = 0;

  constructor(initialMs: number, maxMs: number) {
    this.#delay = initialMs;
    this.#maxMs = maxMs;
  }

  /** Sleeps until the next poll; rejects when `signal` fires. */
  async next(signal: AbortSignal): Promise<void> {
    const ms = Math.max(this.#delay, this.#floor);
    this.#floor = 0;
    this.#delay = Math.min(this.#delay * 2, this.#maxMs);
    await sleep(ms, undefined, { signal });
  }

  /**
   * A poll answered `status` and will be asked again: a busy one's (503, 429) Retry-After, in ms,
   * becomes the floor of the next wait, capped by `remainingMs` (what is left of the deadline).
   */
  answered(status: number | undefined, retryAfterMs: number | undefined, remainingMs: number): void {
    if ((status === 503 || status === 429) && retryAfterMs !== undefined) this.#floor = Math.min(retryAfterMs, Math.max(0, remainingMs));
  }
}
