/**
 * Runs the compiled CLI (node dist/src/cli.js, see cli-process.ts) as a child process on a free
 * loopback port with a config of its own in a temp directory. For tests that measure the real
 * process (RSS) or drive it with real clients (c-icap-client).
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli, type CliProcess } from './cli-process.js';

export { ROOT } from './cli-process.js';

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.once('error', rej);
  });
}

export interface ChildServer extends CliProcess {
  port: number;
  dir: string;
  spoolDir: string;
}

export interface ChildConfig {
  port: number;
  dir: string;
  spoolDir: string;
  configPath: string;
}

/**
 * Writes a server's config file in a temp directory of its own: the ICAP listener on `port` (a
 * free one by default), its spool directory there. `extraYaml` and `serverYaml` as for
 * startChildServer. For tests that start the CLI in their own way (starting-cli.ts).
 */
export async function writeChildConfig(extraYaml = '', serverYaml = '', options: { port?: number } = {}): Promise<ChildConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-child-'));
  const spoolDir = join(dir, 'spool');
  mkdirSync(spoolDir);
  const port = options.port ?? (await freePort());
  const configPath = join(dir, 'icap-bridge.yaml');
  writeFileSync(
    configPath,
    `server:\n  listen: [{ host: 127.0.0.1, port: ${port} }]\n${serverYaml}spool:\n  directory: ${spoolDir}\n${extraYaml}`,
  );
  return { port, dir, spoolDir, configPath };
}

/**
 * `extraYaml` is appended at the top level; `serverYaml` (indented two spaces) goes inside the
 * `server:` section, e.g. a `tls:` block. `options.port` listens on that port instead of a free
 * one (to restart a server on the same port); `options.fileSizeLimitKiB` limits the size of any
 * file it writes (spawnCli).
 */
export async function startChildServer(
  extraYaml = '',
  serverYaml = '',
  options: { port?: number; fileSizeLimitKiB?: number } = {},
): Promise<ChildServer> {
  const { port, dir, spoolDir, configPath } = await writeChildConfig(extraYaml, serverYaml, options.port === undefined ? {} : { port: options.port });
  const limit = options.fileSizeLimitKiB;
  return { ...(await spawnCli(configPath, limit === undefined ? {} : { fileSizeLimitKiB: limit })), port, dir, spoolDir };
}
