/**
 * Holds every response write made during one turn of the event loop and sends them together,
 * socket by socket, in the loop's check phase (setImmediate).
 *
 * Why: on loopback, and much more in a VM, each send(2) that finds the peer asleep in epoll pays
 * for waking it (an inter-processor interrupt). Written as soon as each response was ready, the
 * ~25 µs of JavaScript between two responses let the client fall asleep again, so every write paid
 * the wakeup. Sent back to back at the end of the turn, the first write wakes the client and the
 * others find it awake: REQMOD null-body at 16 connections went from 20.6 k to 30.2 k requests/s
 * and 60 → 43 µs CPU per request (BENCHMARKS.md, Session 4). Latency is unchanged: the check phase
 * runs in the same loop iteration as the reads that produced the responses.
 *
 * Backpressure is untouched: a corked socket still counts what it buffers, so write() returns false
 * past the high-water mark and 'drain' comes after the flush has sent it.
 */
import type { Socket } from 'node:net';

const corkedThisTurn = new Set<Socket>();
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  // uncork() on a socket that was ended or destroyed meanwhile is a no-op (end() uncorks itself).
  for (const socket of corkedThisTurn) socket.uncork();
  corkedThisTurn.clear();
}

/** Corks `socket` until the end of this loop turn (once per turn, however many writes follow). */
export function corkUntilEndOfTurn(socket: Socket): void {
  if (corkedThisTurn.has(socket)) return;
  socket.cork();
  corkedThisTurn.add(socket);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}
