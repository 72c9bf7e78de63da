import { once } from 'node:events';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { batchedStdout, isoTimeOncePerMs } from '../../src/observability/log-destination.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

function logFile(): { path: string; fd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-log-'));
  dirs.push(dir);
  const path = join(dir, 'out.log');
  return { path, fd: openSync(path, 'w') };
}

/** end() waits for the write in flight, writes what is left and closes the file. */
async function endOf(destination: ReturnType<typeof batchedStdout>): Promise<void> {
  const closed = once(destination, 'close');
  destination.end();
  await closed;
}

const line = (i: number): string => `{"n":${i},"pad":"${'é'.repeat(i % 300)}"}\n`;

describe('batchedStdout', () => {
  it('writes every line whole and in order, across turns and chunk boundaries', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 2048, maxWrite: 4096, fd });
    const expected: string[] = [];
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < 50; i++) {
        const l = line(turn * 50 + i);
        expected.push(l);
        destination.write(l);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    destination.write(line(9999)); // still in this turn when end() is called
    expected.push(line(9999));
    await endOf(destination);
    expect(readFileSync(path, 'utf8')).toBe(expected.join(''));
  });

  it('holds a line until the end of the turn, then writes it within the flush interval', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 8192, maxWrite: 16_384, fd });
    destination.write(line(1));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(readFileSync(path, 'utf8')).toBe(line(1));
    await endOf(destination);
  });

  it('flushSync() writes the lines of the current turn too (pino calls it when the process exits)', async () => {
    const { path, fd } = logFile();
    const destination = batchedStdout({ minLength: 8192, maxWrite: 16_384, fd });
    destination.write(line(7));
    destination.write(line(8));
    destination.flushSync();
    expect(readFileSync(path, 'utf8')).toBe(line(7) + line(8));
    await endOf(destination);
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
