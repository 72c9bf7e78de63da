/**
 * server.processes: 2 on the real CLI, signalled while workers start: at the first start-up
 * (SIGTERM: the primary stops every worker and exits 0, no worker crashes, no spool directory is
 * left; SIGHUP: reloaded once every worker is ready) and while a replacement worker starts, before
 * it has its configuration or inside start() (the stop is honoured at once, not after the
 * grace period and a SIGKILL).
 *
 * Each test runs its own server: a cluster whose start-up or restart it interrupts.
 */
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startChildServer, writeChildConfig, type ChildServer } from '../helpers/child-server.js';
import { launchCli, type StartingCli } from '../helpers/starting-cli.js';
import { waitFor } from '../helpers/wait.js';
import { childPids, isAlive } from '../../tools/processes.js';

const GRACE_MS = 3000;
const SERVER = `  processes: 2\n  timeouts: { shutdown_grace_ms: ${GRACE_MS} }\n`;
/** An idle cluster stops in well under a second; a worker that ignored its stop would take GRACE_MS + 5 s. */
const PROMPT_MS = GRACE_MS - 500;

let srv: ChildServer | undefined;
let starting: StartingCli | undefined;
/** Every process the tests saw, killed by pid if one outlives its test. */
const pids = new Set<number>();

afterEach(async () => {
  for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  pids.clear();
  await srv?.stop('SIGKILL');
  srv = undefined;
  starting?.kill();
  await starting?.exited;
  starting = undefined;
});

const workerDirs = (spoolDir: string): number[] =>
  readdirSync(spoolDir)
    .filter((d) => d.startsWith('icap-bridge-worker-'))
    .map((d) => Number(d.slice('icap-bridge-worker-'.length)));

const byMsg = (logs: Record<string, unknown>[], msg: string): Record<string, unknown>[] => logs.filter((l) => l.msg === msg);

/** A cluster launched without waiting, once a worker is inside start() (it has made its spool directory). */
async function launchUntilWorkerStarting(): Promise<{ cli: StartingCli; spoolDir: string }> {
  const { configPath, spoolDir } = await writeChildConfig('', SERVER);
  const cli = launchCli(configPath);
  starting = cli;
  pids.add(cli.pid);
  const worker = await waitFor('a worker inside start()', () => workerDirs(spoolDir)[0], { timeoutMs: 15_000, intervalMs: 2 });
  pids.add(worker);
  expect(byMsg(cli.logs(), 'icap-bridge started')).toEqual([]);
  return { cli, spoolDir };
}

/** SIGKILLs a worker of `s`; resolves, as soon as its replacement is forked, every worker pid seen and the replacement's. */
async function killWorkerAwaitFork(s: ChildServer): Promise<{ workers: number[]; replacement: number }> {
  const before = childPids(s.pid);
  expect(before).toHaveLength(2);
  for (const p of before) pids.add(p);
  process.kill(before[0]!, 'SIGKILL');
  const replacement = await waitFor('a replacement worker forked', () => childPids(s.pid).find((p) => !before.includes(p)), { timeoutMs: 10_000, intervalMs: 5 });
  pids.add(replacement);
  return { workers: [...before, replacement], replacement };
}

/** SIGTERM to the primary; checks that it stopped promptly, with code 0, and every worker with it. */
async function expectPromptStop(s: ChildServer, workers: number[]): Promise<void> {
  const t0 = Date.now();
  expect(await s.stop('SIGTERM')).toBe(0);
  expect(Date.now() - t0).toBeLessThan(PROMPT_MS);
  expect(byMsg(s.logs(), 'worker did not stop in time: killing it')).toEqual([]);
  for (const pid of workers) expect(isAlive(pid), `worker ${pid}`).toBe(false);
  expect(readdirSync(s.spoolDir)).toEqual([]);
}

describe('cluster start-up', () => {
  it('SIGTERM while workers start: the primary stops them and exits 0; no crash, nothing left behind', async () => {
    const { cli, spoolDir } = await launchUntilWorkerStarting();
    const workers = childPids(cli.pid);
    for (const p of workers) pids.add(p);
    process.kill(cli.pid, 'SIGTERM');
    const t0 = Date.now();
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(PROMPT_MS);
    expect(cli.stderr()).toBe('');
    expect(byMsg(cli.logs(), 'shutting down')).toMatchObject([{ role: 'primary', during_startup: true }]);
    expect(byMsg(cli.logs(), 'worker did not stop in time: killing it')).toEqual([]);
    for (const pid of workers) expect(isAlive(pid), `worker ${pid}`).toBe(false);
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('SIGHUP while workers start: not fatal; the configuration is reloaded once every worker is ready', async () => {
    const { cli } = await launchUntilWorkerStarting();
    process.kill(cli.pid, 'SIGHUP');
    const primary = (): Record<string, unknown>[] => cli.logs().filter((l) => l.role === 'primary');
    await waitFor('configuration reloaded', () => byMsg(primary(), 'configuration reloaded')[0], { timeoutMs: 15_000 });
    const at = (msg: string): number => primary().findIndex((l) => l.msg === msg);
    expect(at('SIGHUP during start-up: the configuration is reloaded once every worker is ready')).toBeGreaterThanOrEqual(0);
    expect(at('icap-bridge started')).toBeLessThan(at('configuration reloaded'));
    expect((byMsg(primary(), 'configuration reloaded')[0]!.workers as { ok: boolean }[]).map((w) => w.ok)).toEqual([true, true]);
    process.kill(cli.pid, 'SIGTERM');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
  });
});

describe('SIGTERM while a replacement worker starts', () => {
  it('before it has its configuration: it stops at once', async () => {
    srv = await startChildServer('', SERVER);
    const { workers, replacement } = await killWorkerAwaitFork(srv);
    expect(byMsg(srv.logs(), 'worker ready').some((l) => l.worker_pid === replacement)).toBe(false);
    await expectPromptStop(srv, workers);
  });

  it('inside start(): it stops as soon as start() returns', async () => {
    srv = await startChildServer('', SERVER);
    const s = srv;
    const { workers, replacement } = await killWorkerAwaitFork(s);
    // Held inside start() (its spool directory is made there) while the primary's stop reaches it.
    await waitFor('the replacement inside start()', () => workerDirs(s.spoolDir).includes(replacement), { timeoutMs: 10_000, intervalMs: 2 });
    process.kill(replacement, 'SIGSTOP');
    try {
      expect(byMsg(s.logs(), 'worker ready').some((l) => l.worker_pid === replacement)).toBe(false);
      process.kill(s.pid, 'SIGTERM');
      await waitFor('the primary shutting down', () => byMsg(s.logs(), 'shutting down')[0]);
    } finally {
      process.kill(replacement, 'SIGCONT');
    }
    await expectPromptStop(s, workers);
    const stopping = byMsg(s.logs(), 'worker stopping').find((l) => l.pid === replacement);
    expect(stopping).toMatchObject({ reason: 'primary', during_startup: true });
  });
});
