/**
 * bench/lib/bridge-process.ts when the server does not start: the error carries what the process
 * printed (the log it wrote is in the temp directory that stop() removes), and nothing is left behind.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startBridge } from '../../bench/lib/bridge-process.js';

const scratch = mkdtempSync(join(tmpdir(), 'icap-bridge-test-bridge-process-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('startBridge', () => {
  it('rejects with the log of a server that exited before it started, and removes its directory', async () => {
    // Stands in for dist/src/cli.js: says why it cannot start, then exits.
    const cli = join(scratch, 'fails-to-start.mjs');
    writeFileSync(cli, "console.error('configuration error: the reason is here'); process.exit(2);\n");
    const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('icap-bridge-bench-')));

    const started = startBridge({ cli, port: 9, processes: 1, clamdEndpoint: '127.0.0.1:9', streamMaxBytes: 1_048_576, builtinWorkers: 0 });

    await expect(started).rejects.toThrow(/did not start \(exited: true\):\n.*configuration error: the reason is here/s);
    const left = readdirSync(tmpdir()).filter((n) => n.startsWith('icap-bridge-bench-') && !before.has(n));
    expect(left).toEqual([]); // no other test starts a bench bridge
  }, 20_000);
});
