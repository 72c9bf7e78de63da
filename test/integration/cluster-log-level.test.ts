/**
 * server.processes: 2 on the real CLI: a SIGHUP that changes logging.level reaches every worker
 * (the primary sends them the configuration over IPC), including the loggers each made before the
 * reload: the pid-bound one made at start and those of connections already open.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';
import { isAlive } from '../../tools/processes.js';

/** Connections opened before the reload: enough that round-robin gives each worker some. */
const CONNECTIONS = 6;

let srv: ChildServer;
let workers: number[];
const clients: TestClient[] = [];

const byMsg = (msg: string): Record<string, unknown>[] => srv.logs().filter((l) => l.msg === msg);

async function options(c: TestClient): Promise<void> {
  c.write(buildRequest({ method: 'OPTIONS' }).first);
  expect((await c.read()).status).toBe(200);
}

beforeAll(async () => {
  srv = await startChildServer('', '  processes: 2\n  timeouts: { shutdown_grace_ms: 1000 }\n');
  workers = byMsg('icap-bridge started').find((l) => l.role === 'primary')!.worker_pids as number[];
});

afterAll(async () => {
  for (const c of clients) c.close();
  await srv?.stop('SIGKILL');
  for (const pid of workers ?? []) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
});

describe('logging.level on reload, server.processes: 2', () => {
  it('info → debug: every worker writes debug lines from its start-up logger and from connections opened before', async () => {
    for (let i = 0; i < CONNECTIONS; i++) {
      const c = await TestClient.connect(srv.port);
      clients.push(c);
      await options(c);
    }
    await waitFor('the access lines', () => byMsg('access').length >= CONNECTIONS);
    expect(new Set(byMsg('access').map((l) => l.pid))).toEqual(new Set(workers));

    const configPath = join(srv.dir, 'icap-bridge.yaml');
    const text = readFileSync(configPath, 'utf8').replace('timeouts: {', 'timeouts: { keep_alive_ms: 300,');
    writeFileSync(configPath, `${text}logging:\n  level: debug\n`);
    process.kill(srv.pid, 'SIGHUP');
    const reloaded = await waitFor('configuration reloaded', () => byMsg('configuration reloaded').find((l) => l.role === 'primary'), { timeoutMs: 10_000 });
    expect((reloaded.workers as { ok: boolean }[]).map((w) => w.ok)).toEqual([true, true]);

    // Each open connection takes the reloaded configuration with its next request, then idles out.
    await Promise.all(clients.map(async (c) => (await options(c), await c.waitClosed(5_000))));
    const timeouts = await waitFor('the keep-alive timeout lines', () => {
      const lines = byMsg('keep-alive timeout');
      return lines.length >= CONNECTIONS && lines;
    });
    expect(new Set(timeouts.map((l) => l.pid))).toEqual(new Set(workers));

    // A worker's own SIGHUP is logged at debug by the logger it made at start.
    for (const pid of workers) process.kill(pid, 'SIGHUP');
    const ignored = await waitFor('the SIGHUP-ignored lines', () => {
      const lines = byMsg('SIGHUP ignored: the primary reloads the workers');
      return lines.length >= workers.length && lines;
    });
    expect(new Set(ignored.map((l) => l.pid))).toEqual(new Set(workers));
  });
});
