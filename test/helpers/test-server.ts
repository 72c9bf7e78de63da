/**
 * An in-process icap-bridge on 127.0.0.1 port 0 with a config built from YAML text, its access
 * records and log lines captured, so tests assert on what operators would see.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createBackends } from '../../src/backends/create-backends.js';
import type { Backend } from '../../src/backends/backend.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import type { AccessRecord } from '../../src/observability/access-log.js';
import { createLogger } from '../../src/observability/logger.js';
import { createIcapServer, type IcapServer } from '../../src/server/icap-server.js';

export interface TestServer {
  port: number;
  config: Config;
  server: IcapServer;
  records: AccessRecord[];
  logs: Record<string, unknown>[];
  spoolDir: string;
  /** Resolves with the next `n`-th access record (counting from now). */
  nextRecord(): Promise<AccessRecord>;
  close(): Promise<void>;
}

/** Extra YAML is merged under the defaults: pass whole top-level sections. */
export async function startTestServer(yaml = '', opts: { backends?: Map<string, Backend> } = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-test-'));
  const spoolDir = join(dir, 'spool');
  mkdirSync(spoolDir);
  const text = yaml.includes('server:') ? yaml : `server:\n  listen: [{ host: 127.0.0.1, port: 0 }]\n${yaml}`;
  const withSpool = text.includes('spool:') ? text : `${text}\nspool:\n  directory: ${spoolDir}\n`;
  const source = join(dir, 'icap-bridge.yaml');
  writeFileSync(source, withSpool);
  const config = parseConfig(withSpool, source);
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination });
  const backends = opts.backends ?? (await createBackends(config));
  const records: AccessRecord[] = [];
  let waiters: ((r: AccessRecord) => void)[] = [];
  const server = createIcapServer(config, {
    logger,
    backends,
    onTransaction: (r) => {
      records.push(r);
      const w = waiters;
      waiters = [];
      for (const f of w) f(r);
    },
  });
  const [address] = await server.listen();
  return {
    port: address!.port,
    config,
    server,
    records,
    logs,
    spoolDir: config.spool.directory,
    nextRecord: () => new Promise((resolve) => waiters.push(resolve)),
    async close() {
      await server.close(1000); // the server owns and closes its backends
    },
  };
}
