/**
 * The time this event-loop turn's I/O began: the first call in a turn reads the clock, later calls
 * in the same turn get that reading, and a setImmediate (the check phase, right after the poll
 * phase that ran the socket callbacks) forgets it.
 *
 * Why the generator needs it: when one epoll_wait returns 16 answers at once, Node runs the 16 read
 * callbacks one after another, and each one also writes that connection's next request (a loopback
 * write(2), ~5–9 µs here). Timed with performance.now() inside its own callback, the 16th answer
 * would count ~15 × that of the generator's own work as the server's latency. Every answer handled
 * in a turn was already in its socket when epoll_wait returned, so the turn's first reading is at or
 * after each one's arrival: a latency ending there can only be too long, never too short.
 */
let turnStartedAt = -1;

function endTurn(): void {
  turnStartedAt = -1;
}

export function ioTurnStart(): number {
  if (turnStartedAt < 0) {
    turnStartedAt = performance.now();
    setImmediate(endTurn);
  }
  return turnStartedAt;
}
