/**
 * Holds the response writes made during one turn of the event loop and sends them together,
 * socket by socket, in the loop's check phase (setImmediate), while more than one client
 * connection is open.
 *
 * Why: on loopback, and much more in a VM, each send(2) that finds the peer asleep in epoll pays
 * for waking it (an inter-processor interrupt). Written as soon as each response was ready, the
 * ~25 µs of JavaScript between two responses let the client fall asleep again, so every write paid
 * the wakeup. Sent back to back at the end of the turn, the first write wakes the client and the
 * others find it awake: REQMOD null-body at 16 connections went from 20.6 k to 30.2 k requests/s
 * and 60 → 43 µs CPU per request (BENCHMARKS.md, Session 4).
 *
 * With a single client connection there is nothing to batch, and holding its answer until the
 * end of the turn only makes the client wait for our access line and metrics instead of working on
 * its side meanwhile: one connection went from ~9 k to ~5.5 k requests/s. So a write is held only
 * while more than one ICAP connection is open in this process (connectionOpened/Closed, called by
 * the connections). Predicting from the number of requests read per turn was tried and lost 12 %
 * at 16 connections: many turns read a single request, yet their answers still met others.
 *
 * Backpressure is untouched: a corked socket still counts what it buffers, so write() returns false
 * past the high-water mark and 'drain' comes after the flush has sent it.
 *
 * Work that no answer waits for (the access lines, access-log-queue.ts) can run right after the
 * flush (afterAnswersSent): the clients then work on their side while we do it, instead of waiting
 * for it.
 */
import type { Socket } from 'node:net';

/** Sockets corked this turn, in order. An array, not a Set: whether a socket is in it is its cork count. */
let corkedThisTurn: Socket[] = [];
let flushScheduled = false;
let openConnections = 0;
/** Run once this turn's answers are sent, in order. */
let afterSendTasks: (() => void)[] = [];

/** An ICAP client connection was accepted; paired with connectionClosed(). */
export function connectionOpened(): void {
  openConnections++;
}

export function connectionClosed(): void {
  openConnections--;
}

/** Whether a write now is worth holding until the end of the turn: other answers may join it. */
export function worthCoalescing(): boolean {
  return openConnections > 1;
}

function flush(): void {
  flushScheduled = false;
  // uncork() on a socket that was ended or destroyed meanwhile is a no-op (end() uncorks itself).
  const sockets = corkedThisTurn;
  corkedThisTurn = [];
  for (const socket of sockets) socket.uncork();
  if (afterSendTasks.length === 0) return;
  const tasks = afterSendTasks;
  afterSendTasks = [];
  for (const task of tasks) task();
}

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flush);
}

/**
 * Runs `task` at the end of this turn, right after the answers held until then are sent. `task` must
 * not throw: it runs in the loop's check phase, where a throw would end the process.
 */
export function afterAnswersSent(task: () => void): void {
  afterSendTasks.push(task);
  scheduleFlush();
}

/** Corks `socket` until the end of this loop turn (once per turn, however many writes follow). */
export function corkUntilEndOfTurn(socket: Socket): void {
  // Client sockets are corked only here (ResponseSink's cork/uncork pair ends within its call), so
  // a corked socket was corked this turn. An end() uncorks it; corked again, it is listed twice and
  // the second uncork() is a no-op.
  if (socket.writableCorked > 0) return;
  socket.cork();
  corkedThisTurn.push(socket);
  scheduleFlush();
}
