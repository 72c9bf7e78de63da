/**
 * Access lines after this turn's answers (src/server/access-log-queue.ts): written once the held
 * answers are sent, in order, never lost on a stop, and at once when answers are not held.
 */
import { once } from 'node:events';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AccessRecord } from '../../src/observability/access-log.js';
import { createLogger } from '../../src/observability/logger.js';
import { createAccessLogQueue } from '../../src/server/access-log-queue.js';
import { connectionClosed, connectionOpened, corkUntilEndOfTurn } from '../../src/server/write-coalescer.js';

const RECORD: AccessRecord = {
  transaction_id: 'q-1',
  client: '127.0.0.1:40000',
  method: 'REQMOD',
  service: 'echo',
  icap_status: 204,
  http_status: null,
  bytes_in: 120,
  bytes_out: 60,
  preview: null,
  body_bytes: 0,
  verdict: 'not-scanned',
  threats: [],
  scan_errors: [],
  reason: 'no-body',
  duration_ms: 0.2,
  scans: [],
};

const record = (id: string): AccessRecord => ({ ...RECORD, transaction_id: id });

/** A logger whose lines land in `ids` (their transaction ids), through `onLine` first when given. */
function capture(onLine: () => void = () => {}, level = 'info') {
  const ids: string[] = [];
  const logger = createLogger({
    level,
    destination: {
      write(line: string) {
        onLine();
        ids.push((JSON.parse(line) as { access: AccessRecord }).access.transaction_id);
      },
    },
  });
  return { logger, ids };
}

const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Two connections open, as the coalescer counts them: answers are held until the end of the turn. */
function holdAnswers(): void {
  connectionOpened();
  connectionOpened();
  cleanups.push(() => {
    connectionClosed();
    connectionClosed();
  });
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

describe('createAccessLogQueue', () => {
  it('writes the line at once when answers are not held (one connection)', () => {
    const { logger, ids } = capture();
    createAccessLogQueue(logger, () => true).log(record('a'));
    expect(ids).toEqual(['a']);
  });

  it('while answers are held, writes the turn\'s lines in order after the answers were sent', async () => {
    holdAnswers();
    const listener = net.createServer().listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
    const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
    const [server] = await accepted;
    cleanups.push(() => {
      server.destroy();
      client.destroy();
      listener.close();
    });

    // What the socket still held back each time a line was written.
    const corkedAtLine: number[] = [];
    const { logger, ids } = capture(() => corkedAtLine.push(server.writableCorked));
    const queue = createAccessLogQueue(logger, () => true);
    corkUntilEndOfTurn(server);
    server.write('answer 1');
    queue.log(record('1'));
    queue.log(record('2'));
    expect(ids).toEqual([]);
    const received = once(client, 'data') as Promise<[Buffer]>;
    await endOfTurn();
    expect(ids).toEqual(['1', '2']);
    expect(corkedAtLine).toEqual([0, 0]);
    expect((await received)[0].toString()).toBe('answer 1');

    // The next turn's lines are the next turn's.
    queue.log(record('3'));
    expect(ids).toEqual(['1', '2']);
    await endOfTurn();
    expect(ids).toEqual(['1', '2', '3']);
  });

  it('drain() writes what is waiting at once (a stopping server), and the end of the turn adds nothing', async () => {
    holdAnswers();
    const { logger, ids } = capture();
    const queue = createAccessLogQueue(logger, () => true);
    queue.log(record('x'));
    queue.log(record('y'));
    queue.drain();
    expect(ids).toEqual(['x', 'y']);
    await endOfTurn();
    expect(ids).toEqual(['x', 'y']);
  });

  it('writes nothing when the access log is off when the record comes; writes whatever the level', async () => {
    holdAnswers();
    let enabled = false;
    const off = capture();
    const queue = createAccessLogQueue(off.logger, () => enabled);
    queue.log(record('off'));
    enabled = true;
    queue.log(record('on'));
    const quiet = capture(() => {}, 'warn');
    createAccessLogQueue(quiet.logger, () => true).log(record('quiet'));
    await endOfTurn();
    expect(off.ids).toEqual(['on']);
    expect(quiet.ids).toEqual(['quiet']);
  });

  it('writes each line in the format configured when it is written, held or not', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => lines.push(line) } });
    let format: 'json' | 'squid' = 'squid';
    const queue = createAccessLogQueue(logger, () => true, () => format);
    queue.log(record('at-once'));
    holdAnswers();
    queue.log(record('held'));
    format = 'json';
    queue.log(record('held-too'));
    expect(lines).toHaveLength(1);
    await endOfTurn();
    expect(lines[0]).toMatch(/^\d+\.\d{3} +0 127\.0\.0\.1:40000 NOT_SCANNED\/204 60 REQMOD - - echo\/at-once -\n$/);
    expect(lines.slice(1).map((l) => (JSON.parse(l) as { access: AccessRecord }).access.transaction_id)).toEqual(['held', 'held-too']);
  });

  it('a destination that throws loses its line, not the process or the lines after it', async () => {
    holdAnswers();
    let calls = 0;
    const { logger, ids } = capture(() => {
      if (++calls === 1) throw new Error('disk on fire');
    });
    const queue = createAccessLogQueue(logger, () => true);
    queue.log(record('lost'));
    queue.log(record('kept'));
    await endOfTurn();
    expect(ids).toEqual(['kept']);
  });
});
