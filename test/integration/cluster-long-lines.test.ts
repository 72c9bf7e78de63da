/**
 * server.processes: 2 with stdout a real pipe (a FIFO, as under a container runtime) read slowly:
 * 4 KiB every 3 ms. Access lines for 8000-character URLs are longer than PIPE_BUF, so one write(2)
 * of such a line is not atomic; every line must still arrive whole, none interleaved with another
 * process's (src/cluster/log-destination.ts), and none lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, writeChildConfig } from '../helpers/child-server.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, httpRequestHead } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';

/** Reads its stdin (the FIFO) 4 KiB at a time, 3 ms apart, into the file named by argv[1]. */
const SLOW_READER = `
const fs = require('node:fs');
const input = fs.openSync(process.argv[1], 'r');
const output = fs.openSync(process.argv[2], 'w');
const buf = Buffer.alloc(4096);
const step = () => {
  let n = 0;
  try { n = fs.readSync(input, buf, 0, 4096, null); } catch (e) { if (e.code !== 'EAGAIN') throw e; n = -1; }
  if (n === 0) return;
  if (n > 0) fs.writeSync(output, buf, 0, n);
  setTimeout(step, 3);
};
step();
`;

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const CONNECTIONS = 8;
const REQUESTS_PER_CONNECTION = 60;
const URL_CHARS = 8000;

describe('server.processes: 2, stdout a slowly read pipe', () => {
  it('writes every access line whole, however long, and loses none', async () => {
    const { configPath, port } = await writeChildConfig('services:\n  reqmod: { methods: [REQMOD] }\n', '  processes: 2\n');
    const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-pipe-'));
    const fifo = join(dir, 'stdout.fifo');
    const captured = join(dir, 'stdout.log');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn(process.execPath, ['-e', SLOW_READER, fifo, captured], { stdio: 'ignore' });
    children.push(reader);
    // Blocks until the reader has opened its end (it does so first thing).
    const writeEnd = openSync(fifo, constants.O_WRONLY);
    const server = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--config', configPath], { stdio: ['ignore', writeEnd, 'pipe'] });
    children.push(server);
    closeSync(writeEnd);
    let stderr = '';
    server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));

    const lines = (): string[] => (existsSync(captured) ? readFileSync(captured, 'utf8').split('\n').filter((l) => l !== '') : []);
    await waitFor('"icap-bridge started"', () => {
      if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode}: ${stderr}`);
      return lines().some((l) => l.includes('"icap-bridge started"'));
    }, { timeoutMs: 20_000 });

    const urlFor = (c: number, i: number): string => {
      const path = `http://example.com/c${c}/r${i}?`;
      return path + 'utm_x='.padEnd(URL_CHARS - path.length, 'a');
    };
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, c) => {
        const client = await TestClient.connect(port);
        for (let i = 0; i < REQUESTS_PER_CONNECTION; i++) {
          client.write(buildRequest({ method: 'REQMOD', service: 'reqmod', reqHdr: httpRequestHead(urlFor(c, i)) }).first);
          expect((await client.read()).status).toBeLessThan(300);
        }
        client.close();
      }),
    );

    const total = CONNECTIONS * REQUESTS_PER_CONNECTION;
    const isAccess = (l: string): boolean => l.includes('"msg":"access"');
    await waitFor('every access line', () => lines().filter(isAccess).length >= total, { timeoutMs: 20_000, intervalMs: 100 });
    server.kill('SIGTERM');
    await waitFor('the server to exit', () => server.exitCode !== null, { timeoutMs: 15_000 });
    await waitFor('the reader to finish', () => reader.exitCode !== null, { timeoutMs: 5_000 });

    const all = lines();
    const broken = all.filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    expect(broken.map((l) => l.slice(0, 120))).toEqual([]);
    const urls = all
      .map((l) => JSON.parse(l) as { msg?: string; access?: { url?: string } })
      .filter((r) => r.msg === 'access')
      .map((r) => r.access?.url);
    expect(urls).toHaveLength(total);
    const expected = Array.from({ length: CONNECTIONS }, (_, c) => Array.from({ length: REQUESTS_PER_CONNECTION }, (_, i) => urlFor(c, i))).flat();
    expect(new Set(urls)).toEqual(new Set(expected));
    expect(all.some((l) => l.includes('"log lines dropped'))).toBe(false);
  }, 90_000);
});
