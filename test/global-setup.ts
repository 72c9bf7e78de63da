/**
 * Compiles the project once before the tests, so tests that run the real CLI as a child process
 * (memory, c-icap-client, signals) run what users run: node dist/src/cli.js.
 *
 * Every temp file and directory of the run goes under one directory made here (TMPDIR, which
 * os.tmpdir() and the processes the tests start read), removed when the run ends: a test's
 * config files, spool directories, sockets and the servers' own temp files never pile up in /tmp,
 * whichever helper or child process made them.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Set by the first run of this setup: vitest runs a globalSetup once per project (unit, integration). */
const RUN_DIR_VARIABLE = 'ICAP_BRIDGE_TEST_RUN_DIR';

export default function setup(): () => void {
  if (process.env[RUN_DIR_VARIABLE] !== undefined) return () => {};
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  const previous = process.env['TMPDIR'];
  const runDir = mkdtempSync(join(tmpdir(), 'icap-bridge-tests-'));
  // As /tmp is: Squid and clamd run as unprivileged users and must reach their directories inside.
  chmodSync(runDir, 0o1777);
  process.env['TMPDIR'] = runDir;
  process.env[RUN_DIR_VARIABLE] = runDir;
  return () => {
    delete process.env[RUN_DIR_VARIABLE];
    rmSync(runDir, { recursive: true, force: true });
    if (previous === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = previous;
  };
}
