/**
 * The MetaDefender Core emulator (emulators/metadefender) as a separate child process, so a test
 * can SIGKILL one node mid-load and start it again on the same port, as a crashed and restarted
 * Core server would be. In-process emulators (startEmulator) cannot die that way: their sockets
 * would be closed politely by close(), never cut.
 *
 * The options go to the emulator as a JSON config file (`--config`); the port is fixed at first
 * start so restart() comes back at the same URL. A restarted node knows no jobs, like a real one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EmulatorOptions } from '../../emulators/metadefender/config.js';
import { freePort, ROOT } from './child-server.js';

export interface EmulatorProcess {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** PID of the running child, or -1 while it is down. */
  pid(): number;
  /** ms from spawn until "listening", per start. */
  readonly startTimesMs: number[];
  /** Sends `signal` and waits (bounded) for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same options (after kill(), or kills first). */
  restart(): Promise<void>;
  /** kill('SIGTERM') and remove the temp directory. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 5_000;

export async function startEmulatorProcess(options: Omit<EmulatorOptions, 'host' | 'port'> = {}): Promise<EmulatorProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-md-proc-'));
  const configPath = join(dir, 'emulator.json');
  writeFileSync(configPath, JSON.stringify({ ...options, host: '127.0.0.1' }));
  const port = await freePort();
  const startTimesMs: number[] = [];
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();

  async function launch(): Promise<void> {
    const started = performance.now();
    // tsx is resolved from ROOT (the project's devDependency), as `npm run emulator:metadefender` does.
    const proc = spawn(process.execPath, ['--import', 'tsx', 'emulators/metadefender/main.ts', '--config', configPath, '--port', String(port)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    child = proc;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!out.includes('listening on')) {
      if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
        if (proc.exitCode === null) proc.kill('SIGKILL');
        child = null;
        throw new Error(`MetaDefender emulator did not start on port ${port}: ${out.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    startTimesMs.push(Math.round(performance.now() - started));
  }

  async function kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = child;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) {
      child = null;
      return;
    }
    process.kill(proc.pid!, signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), EXIT_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (timedOut) {
      process.kill(proc.pid!, 'SIGKILL');
      await exited;
    }
    child = null;
  }

  await launch();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: () => child?.pid ?? -1,
    startTimesMs,
    kill,
    restart: async () => {
      await kill('SIGTERM');
      await launch();
    },
    stop: async () => {
      await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
