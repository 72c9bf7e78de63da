/**
 * server.processes: 2 on the real CLI with a builtin hash list (backends.*.hash_lists) that has a
 * bad line. The primary parses the list when it loads the configuration (config/backend-schema.ts),
 * so the list is refused there, as a configuration error naming the key, the file and the line,
 * rather than by every worker building its backend:
 *
 * - at start: exit 2 before any worker is forked;
 * - on SIGHUP: the reload is rejected, the workers keep serving the list they run, and a worker
 *   replaced afterwards starts with it (not with the broken list, which would kill it again and
 *   again).
 *
 * Each test runs its own server; every process is stopped by its pid.
 */
import { createHash } from 'node:crypto';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeChildConfig, type ChildServer } from '../helpers/child-server.js';
import { spawnCli } from '../helpers/cli-process.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest } from '../helpers/icap-messages.js';
import { launchCli, type StartingCli } from '../helpers/starting-cli.js';
import { waitFor } from '../helpers/wait.js';
import { childPids, isAlive } from '../../tools/processes.js';

const SERVER = '  processes: 2\n  timeouts: { shutdown_grace_ms: 3000 }\n';
const BODY = 'a body the hash list names';
const SHA = createHash('sha256').update(BODY).digest('hex');
/** Line 3 is one hex digit short. */
const BROKEN_LIST = `# deny\n${SHA} Test.Listed\n${'b'.repeat(63)} Short.One\nnot-a-hash\n`;
const RULE = `:3: expected a SHA-256 (64 hex digits), optionally followed by a threat name, got "${'b'.repeat(63)} Short.One"`;

const backends = (list: string): string => `backends:
  builtin: { type: builtin, workers: 1, hash_lists: [${list}] }
services:
  respmod: { methods: [RESPMOD], backends: [builtin] }
`;

let srv: ChildServer | undefined;
let starting: StartingCli | undefined;
const dirs: string[] = [];
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
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const byMsg = (logs: Record<string, unknown>[], msg: string): Record<string, unknown>[] => logs.filter((l) => l.msg === msg);

describe('server.processes: 2 with a hash list that does not parse', () => {
  it('at start: a configuration error from the primary naming key, file and line; exit 2 before any worker is forked', async () => {
    const { configPath, dir, spoolDir } = await writeChildConfig(backends('deny.sha256'), SERVER);
    dirs.push(dir);
    const list = join(dir, 'deny.sha256');
    writeFileSync(list, BROKEN_LIST);
    const cli = launchCli(configPath);
    starting = cli;
    pids.add(cli.pid);
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000).unref());
    expect(await Promise.race([cli.exited, timeout])).toEqual({ code: 2, signal: null });
    expect(cli.stderr()).toBe(`icap-bridge: configuration error\n${configPath}: backends.builtin.hash_lists[0]: ${list}${RULE}\n`);
    // No worker started: none logged, none wrote to stderr, no copies or worker spool directories.
    expect(cli.logs().filter((l) => l.role === 'worker' || l.msg === 'worker exited')).toEqual([]);
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('on SIGHUP: the reload is rejected with the same error; the workers, and a replacement, keep the running list', async () => {
    // The list exists before the config is written (startChildServer starts at once): write both into one directory.
    const { configPath, dir, port, spoolDir } = await writeChildConfig(backends('deny.sha256'), SERVER);
    dirs.push(dir);
    const list = join(dir, 'deny.sha256');
    writeFileSync(list, `# deny\n${SHA} Test.Listed\n`);
    srv = { ...(await spawnCli(configPath)), port, dir, spoolDir };
    const s = srv;
    const primary = (msg: string): Record<string, unknown>[] => byMsg(s.logs(), msg).filter((l) => l.role === 'primary');
    for (const pid of childPids(s.pid)) pids.add(pid);
    expect(await verdicts(s, 4)).toEqual(new Set(['infected']));

    writeFileSync(list, BROKEN_LIST);
    process.kill(s.pid, 'SIGHUP');
    const rejected = await waitFor('reload rejected', () => primary('reload rejected: keeping the running configuration')[0], { timeoutMs: 10_000 });
    expect((rejected.err as { message: string }).message).toBe(`${configPath}: backends.builtin.hash_lists[0]: ${list}${RULE}`);
    // The workers were never sent it.
    expect(s.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded'))).toEqual([]);
    expect(await verdicts(s, 4)).toEqual(new Set(['infected']));

    // A replacement worker starts with the configuration (and the copy of the list) the primary runs.
    const [victim] = childPids(s.pid);
    process.kill(victim!, 'SIGKILL');
    const replacement = await waitFor(
      'a replacement worker ready',
      () => byMsg(s.logs(), 'worker ready').find((l) => !pids.has(l.worker_pid as number))?.worker_pid as number | undefined,
      { timeoutMs: 20_000 },
    );
    pids.add(replacement);
    await waitFor('the killed worker gone', () => !childPids(s.pid).includes(victim!), { timeoutMs: 10_000 });
    const from = byMsg(s.logs(), 'access').length;
    expect(await verdicts(s, 6)).toEqual(new Set(['infected']));
    const servedBy = await waitFor('the access lines', () => {
      const lines = byMsg(s.logs(), 'access').slice(from);
      return lines.length >= 6 ? new Set(lines.map((l) => l.pid)) : undefined;
    });
    expect(servedBy).toContain(replacement);
    expect(primary('worker exited')).toHaveLength(1);
    expect(await s.stop('SIGTERM')).toBe(0);
  });
});

/** On `n` new connections, a RESPMOD of BODY each: 'infected' or 'clean'. */
async function verdicts(s: ChildServer, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const c = await TestClient.connect(s.port);
    try {
      c.write(buildRequest({ body: [BODY], headers: [['Allow', '204']] }).first);
      const r = await c.read();
      seen.add(r.status === 204 ? 'clean' : (r.header('X-Infection-Found') ?? '').includes('Test.Listed') ? 'infected' : `status ${r.status}`);
    } finally {
      c.close();
    }
  }
  return seen;
}
