/**
 * logging.level on reload: the new level reaches the root logger and every child made before the
 * reload (a connection's logger, a worker's pid-bound logger), and access lines are written
 * whatever the level, as Squid's access.log is whatever debug_options says.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/index.js';
import { start, type Running } from '../../src/main.js';
import { createLogger, setLogLevel } from '../../src/observability/logger.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';

type Line = Record<string, unknown>;

function capture(): { lines: Line[]; destination: { write(line: string): void } } {
  const lines: Line[] = [];
  return { lines, destination: { write: (line: string) => void lines.push(JSON.parse(line) as Line) } };
}

describe('setLogLevel', () => {
  it('moves the root and every logger made from it before, grandchildren included, and those made after', () => {
    const { lines, destination } = capture();
    const root = createLogger({ level: 'info', destination });
    const child = root.child({ connection: 1 });
    const grandchild = child.child({ transaction: 1 });
    const all = [root, child, grandchild];

    setLogLevel(root, 'warn');
    for (const logger of all) logger.info('quieted');
    for (const logger of all) logger.warn('warn');
    expect(lines.map((l) => l.msg)).toEqual(all.map(() => 'warn'));

    setLogLevel(root, 'debug');
    for (const logger of [...all, root.child({ later: 1 })]) logger.debug('debug now');
    expect(lines.filter((l) => l.msg === 'debug now')).toHaveLength(all.length + 1);
  });
});

describe('reload applies logging.level (main.ts start)', () => {
  let dir: string;
  let running: Running | null = null;
  let client: TestClient | null = null;

  afterEach(async () => {
    client?.close();
    client = null;
    await running?.stop(0);
    running = null;
    rmSync(dir, { recursive: true, force: true });
  });

  /** The server as a cluster worker runs it: its logger a child bound to its pid, made at start. */
  async function startAt(level: string): Promise<{ lines: Line[]; configAt: (level: string, timeouts?: string) => Config }> {
    dir = mkdtempSync(join(tmpdir(), 'icap-bridge-log-level-'));
    mkdirSync(join(dir, 'spool'));
    const source = join(dir, 'icap-bridge.yaml');
    const configAt = (level: string, timeouts = '{}'): Config => {
      const text =
        `server:\n  listen: [{ host: 127.0.0.1, port: 0 }]\n  timeouts: ${timeouts}\n` +
        `logging:\n  level: ${level}\nspool:\n  directory: ${join(dir, 'spool')}\n`;
      writeFileSync(source, text);
      return parseConfig(text, source);
    };
    const { lines, destination } = capture();
    running = await start(source, { config: configAt(level), logDestination: destination, logBindings: { pid: process.pid } });
    return { lines, configAt };
  }

  async function options(c: TestClient): Promise<void> {
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    expect((await c.read()).status).toBe(200);
  }

  const accessLines = (lines: Line[]): Line[] => lines.filter((l) => l.msg === 'access');

  it('info → debug: a connection opened before the reload writes its debug lines', async () => {
    const { lines, configAt } = await startAt('info');
    client = await TestClient.connect(running!.addresses[0]!.port);
    await options(client); // the connection and its logger exist, at level info

    expect(await running!.reload(configAt('debug', '{ keep_alive_ms: 200 }'))).toBe(true);
    await options(client); // this request takes the reloaded configuration: keep-alive 200 ms
    await client.waitClosed(5_000);

    const timeout = await waitFor('the keep-alive timeout line', () => lines.find((l) => l.msg === 'keep-alive timeout'));
    expect(timeout).toMatchObject({ level: 20, pid: process.pid, client: '127.0.0.1' });
  });

  it('info → warn: info lines stop on every logger made before the reload; access lines go on', async () => {
    const { lines, configAt } = await startAt('info');
    client = await TestClient.connect(running!.addresses[0]!.port);
    await options(client);
    await waitFor('the access line at info', () => accessLines(lines).length === 1);

    expect(await running!.reload(configAt('warn'))).toBe(true);
    expect(lines.filter((l) => l.msg === 'configuration reloaded')).toHaveLength(0); // an info line, at warn

    await options(client);
    await waitFor('the access line at warn', () => accessLines(lines).length === 2);
    running!.logger.info('info from the start-up logger');
    running!.logger.warn('warn from the start-up logger');
    client.write(buildRequest({ method: 'OPTIONS', service: 'no-such-service' }).first);
    expect((await client.read()).status).toBe(404);
    await client.waitClosed(5_000);

    const messages = lines.map((l) => l.msg);
    expect(messages).toContain('warn from the start-up logger');
    expect(messages).not.toContain('info from the start-up logger');
    expect(messages).not.toContain('unknown service'); // the connection's logger, at info
  });
});
