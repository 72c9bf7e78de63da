/**
 * Request/answer over a worker's IPC channel: the primary sends a message carrying a fresh
 * requestId and waits (bounded) for the worker's message with the same id. A worker that exits,
 * or does not answer in time, rejects the request; nothing waits forever.
 */
import type { Worker } from 'node:cluster';
import type { Reply, ToWorker } from './messages.js';

type Pending = { resolve: (reply: Reply) => void; reject: (err: Error) => void; timer: NodeJS.Timeout; worker: Worker };

export class WorkerRequests {
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();

  /** Sends `make(requestId)` to `worker`; resolves with its answer of type `expect`. */
  ask<T extends Reply['type']>(
    worker: Worker,
    make: (requestId: number) => Extract<ToWorker, { requestId: number }>,
    expect: T,
    timeoutMs: number,
  ): Promise<Extract<Reply, { type: T }>> {
    const requestId = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#settle(requestId, new Error(`worker ${worker.process.pid} did not answer ${expect} within ${timeoutMs} ms`)), timeoutMs);
      this.#pending.set(requestId, {
        resolve: (reply) =>
          reply.type === expect ? resolve(reply as Extract<Reply, { type: T }>) : reject(new Error(`worker answered ${reply.type}, expected ${expect}`)),
        reject,
        timer,
        worker,
      });
      // The callback reports a closed channel (a worker that just died) instead of an 'error' event.
      if (!worker.isConnected()) {
        this.#settle(requestId, new Error(`worker ${worker.process.pid} is not connected`));
        return;
      }
      worker.send(make(requestId), (err) => {
        if (err) this.#settle(requestId, err);
      });
    });
  }

  /** A worker's answer arrived. */
  answer(reply: Reply): void {
    this.#settle(reply.requestId, reply);
  }

  /** The worker exited: its open requests fail now rather than at their timeout. */
  workerGone(worker: Worker): void {
    for (const [id, p] of this.#pending) {
      if (p.worker === worker) this.#settle(id, new Error(`worker ${worker.process.pid} exited`));
    }
  }

  #settle(id: number, outcome: Reply | Error): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }
}
