/**
 * The cluster primary's log destination (src/cluster/log-destination.ts): long lines that pile up
 * past 16 MiB while waiting for a window are dropped, and a warning line says how many, as the
 * batched destination does for the lines it drops (src/observability/log-destination.ts).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { primaryLogDestination } from '../../src/cluster/log-destination.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function logFile(): { path: string; fd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-log-'));
  const path = join(dir, 'out.log');
  const fd = openSync(path, 'w');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => closeSync(fd));
  return { path, fd };
}

const MIB = 1024 * 1024;
const longLine = (n: number): string => `{"n":${n},"pad":"${'x'.repeat(MIB)}"}\n`;

describe('primaryLogDestination', () => {
  it('names the long lines it dropped in a warning line once the windows have caught up', async () => {
    const { path, fd } = logFile();
    // The workers take their time to pause: long lines pile up meanwhile.
    let workersPaused: (resume: () => void) => void = () => {};
    const destination = primaryLogDestination(() => new Promise((resolve) => (workersPaused = resolve)), fd);
    const sent = 20;
    for (let n = 0; n < sent; n++) destination.writeLong(longLine(n));
    expect(destination.dropped).toBeGreaterThan(0);
    const dropped = destination.dropped;
    // Only once the windows are written: no warning yet.
    workersPaused(() => {});
    await destination.end();

    const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
    const parsed = lines.map((l) => JSON.parse(l) as { n?: number; level?: number; dropped_lines?: number; msg?: string });
    const written = parsed.filter((p) => p.n !== undefined).length;
    expect(written + dropped).toBe(sent);
    expect(parsed.filter((p) => p.dropped_lines !== undefined)).toEqual([
      expect.objectContaining({ level: 40, dropped_lines: dropped, msg: 'log lines dropped: stdout was not read fast enough' }),
    ]);
    // After the lines it counts.
    expect(parsed.at(-1)!.dropped_lines).toBe(dropped);
  });

  it('names a line dropped because it is longer than 16 MiB on its own', async () => {
    const { path, fd } = logFile();
    const destination = primaryLogDestination(async () => () => {}, fd);
    destination.writeLong(`{"pad":"${'x'.repeat(17 * MIB)}"}\n`);
    await destination.end();
    expect(destination.dropped).toBe(1);
    const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([expect.objectContaining({ dropped_lines: 1 })]);
  });
});
