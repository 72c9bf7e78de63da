/**
 * The compiled CLI (node dist/src/cli.js --config FILE) started without waiting for it to be up,
 * for tests that signal a server while it starts: its JSON log lines, its stderr, how it exited,
 * and whether it handles signals yet (Linux: the SigCgt mask of /proc/PID/status), which tells a
 * test the moment a signal no longer takes its default action (killing the process).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './cli-process.js';

export interface StartingCli {
  readonly pid: number;
  logs(): Record<string, unknown>[];
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL by pid, if still running (for afterEach). */
  kill(): void;
}

export function launchCli(configPath: string): StartingCli {
  const child = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    pid: child.pid!,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stderr: () => err,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    },
  };
}

/**
 * Whether process `pid` has its own handlers for SIGHUP, SIGTERM and SIGINT (false once it has
 * exited). Only SIGHUP's bit says so: Node.js itself catches SIGINT and SIGTERM from the start (to
 * restore the terminal, then die by the signal), and icap-bridge installs the three together.
 */
export function handlesSignals(pid: number): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
  return mask !== null && ((BigInt(`0x${mask[1]}`) >> BigInt(constants.signals.SIGHUP - 1)) & 1n) === 1n;
}
