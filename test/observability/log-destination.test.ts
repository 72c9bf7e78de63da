import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, constants } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { batchedStdout, isoTimeOncePerMs } from '../../src/observability/log-destination.js';

const dirs: string[] = [];
const fds: number[] = [];
afterEach(() => {
  while (fds.length > 0) closeSync(fds.pop()!);
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-log-'));
  dirs.push(dir);
  return dir;
}

function logFile(): { path: string; fd: number } {
  const path = join(tempDir(), 'out.log');
  const fd = openSync(path, 'w');
  fds.push(fd);
  return { path, fd };
}

/** A named pipe: the destination writes its end, the test reads the other (stdout under a container runtime). */
function logPipe(): { fd: number; read: () => Promise<string>; startReading: () => void } {
  const path = join(tempDir(), 'out.fifo');
  execFileSync('mkfifo', [path]);
  // The read end first (non-blocking open), so opening the write end does not wait for a reader.
  const reader = new Socket({ fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  reader.pause();
  const fd = openSync(path, 'w');
  fds.push(fd);
  const chunks: Buffer[] = [];
  reader.on('data', (c) => chunks.push(c as Buffer));
  return {
    fd,
    startReading: () => reader.resume(),
    read: async () => {
      reader.resume();
      // Everything written is in the pipe once end() resolved; read until it is empty.
      await new Promise((resolve) => setTimeout(resolve, 50));
      reader.destroy();
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

const line = (i: number): string => `{"n":${i},"pad":"${'é'.repeat(i % 300)}"}\n`;

async function nextTurn(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe('batchedStdout to a regular file', () => {
  it('writes every line whole and in order, across turns and block boundaries', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 2048, fileBlockBytes: 4096, pipeBlockBytes: 4096, fd });
    const expected: string[] = [];
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < 50; i++) {
        const l = line(turn * 50 + i);
        expected.push(l);
        destination.write(l);
      }
      await nextTurn();
    }
    const long = `{"long":"${'x'.repeat(10_000)}"}\n`; // longer than a block: written on its own
    destination.write(long);
    expected.push(long);
    destination.write(line(9999));
    expected.push(line(9999));
    await destination.end();
    expect(readFileSync(path, 'utf8')).toBe(expected.join(''));
  });

  it('holds a line below minLength, then writes it within the flush interval', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 8192, fileBlockBytes: 65_536, pipeBlockBytes: 65_536, fd });
    destination.write(line(1));
    expect(readFileSync(path, 'utf8')).toBe('');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(readFileSync(path, 'utf8')).toBe(line(1));
    await destination.end();
  });

  it('flushSync() writes the lines still in the block (pino calls it when the process exits)', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 8192, fileBlockBytes: 65_536, pipeBlockBytes: 65_536, fd });
    destination.write(line(7));
    destination.write(line(8));
    destination.flushSync();
    expect(readFileSync(path, 'utf8')).toBe(line(7) + line(8));
    await destination.end();
  });

  it('flush(cb) calls back once the blocks handed to the thread pool are in the file', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 64, fileBlockBytes: 4096, pipeBlockBytes: 4096, fd });
    // Past minLength: sealed and handed to the thread pool at once (whether it lands before the next
    // statement is the thread's race, so only flush's promise is asserted).
    destination.write(line(100));
    destination.write(line(1)); // below minLength: stays in the block until flush seals it
    await new Promise<void>((resolve) => destination.flush(() => resolve()));
    expect(readFileSync(path, 'utf8')).toBe(line(100) + line(1));
    await destination.end();
  });

  it('past the queue cap writes synchronously instead of dropping: every line arrives whole, none is lost', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 1024, fileBlockBytes: 4096, pipeBlockBytes: 4096, fd, maxQueuedBytes: 8192 });
    const total = 5000;
    const expected: string[] = [];
    for (let i = 0; i < total; i++) {
      expected.push(line(i));
      destination.write(line(i)); // one turn: the queue passes its cap many times over
    }
    await destination.end();
    expect(destination.dropped).toBe(0);
    // The one block in flight when a synchronous write starts may land after it: compare as sets of whole lines.
    const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => `${l}\n`);
    expect(lines.length).toBe(total);
    expect([...lines].sort()).toEqual([...expected].sort());
  });
});

describe('batchedStdout to a pipe', () => {
  it('writes every line whole and in order through asynchronous writes', async () => {
    const pipe = logPipe();
    pipe.startReading();
    const destination = batchedStdout({ minLength: 2048, fileBlockBytes: 65_536, pipeBlockBytes: 4096, fd: pipe.fd });
    const expected: string[] = [];
    for (let turn = 0; turn < 40; turn++) {
      for (let i = 0; i < 100; i++) {
        const l = line(turn * 100 + i);
        expected.push(l);
        destination.write(l);
      }
      await nextTurn();
    }
    await destination.end();
    expect(await pipe.read()).toBe(expected.join(''));
    expect(destination.dropped).toBe(0);
  });

  it('drops lines past the queue cap while nobody reads, counts them, and says so once the reader catches up', async () => {
    const pipe = logPipe(); // not read yet: the pipe (64 KiB) fills, then the queue
    const destination = batchedStdout({
      minLength: 4096,
      fileBlockBytes: 65_536,
      pipeBlockBytes: 4096,
      fd: pipe.fd,
      maxQueuedBytes: 32 * 1024,
    });
    const total = 5000;
    for (let i = 0; i < total; i++) destination.write(`{"n":${i}}\n`);
    expect(destination.dropped).toBeGreaterThan(0);
    pipe.startReading();
    await new Promise((resolve) => setTimeout(resolve, 100));
    destination.write('{"after":true}\n');
    await destination.end();
    const lines = (await pipe.read()).split('\n').filter((l) => l !== '');
    // Every line that arrived is whole JSON, numbered lines in order, and kept + dropped = written.
    const parsed = lines.map((l) => JSON.parse(l) as { n?: number; dropped_lines?: number; after?: boolean });
    const numbers = parsed.filter((p) => p.n !== undefined).map((p) => p.n!);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(numbers.length + destination.dropped).toBe(total);
    const report = parsed.find((p) => p.dropped_lines !== undefined);
    expect(report?.dropped_lines).toBe(destination.dropped);
    expect(parsed.at(-1)).toEqual({ after: true });
  });
});

describe('batchedStdout in a cluster (longLine, pause)', () => {
  it('hands lines longer than a pipe block to longLine, holds writes while paused, and writes alone in between', async () => {
    const pipe = logPipe();
    pipe.startReading();
    const long: string[] = [];
    const destination = batchedStdout({
      minLength: 2048,
      fileBlockBytes: 65_536,
      pipeBlockBytes: 4096,
      fd: pipe.fd,
      longLine: (l, done) => {
        long.push(l);
        done();
      },
    });
    const longLine = `{"long":"${'x'.repeat(5000)}"}\n`;
    const nearLimit = `{"near":"${'y'.repeat(4000)}"}\n`; // over the 3-bytes-per-unit bound, but within 4096 bytes
    destination.write(line(1));
    destination.write(longLine);
    destination.write(nearLimit);
    expect(long).toEqual([longLine]);
    await new Promise<void>((resolve) => destination.flush(() => resolve()));
    await new Promise<void>((resolve) => destination.pause(resolve));
    destination.write(line(2));
    destination.flush();
    await new Promise<void>((resolve) => destination.writeWhilePaused(Buffer.from(longLine), resolve));
    destination.resume();
    await destination.end();
    expect(await pipe.read()).toBe(line(1) + nearLimit + longLine + line(2));
  });
});

describe('isoTimeOncePerMs', () => {
  it('gives pino the same field as its isoTime', () => {
    const before = Date.now();
    const stamp = isoTimeOncePerMs();
    const match = /^,"time":"(.+)"$/.exec(stamp);
    expect(match).not.toBeNull();
    const at = Date.parse(match![1]!);
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
  });
});
