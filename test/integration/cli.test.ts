/** The command line as users run it: node dist/src/cli.js. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT, startChildServer } from '../helpers/child-server.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, EICAR, httpRequestHead } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli.js');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('icap-bridge CLI', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(await cli(['--version'])).toMatchObject({ code: 0, stdout: `icap-bridge ${pkg.version}\n` });
  });

  it('--help prints usage', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: icap-bridge [--config FILE]');
  });

  it('an unknown option exits 2 with usage', async () => {
    const r = await cli(['--nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage:');
  });

  it('an invalid config exits 2 naming the file, the key path and the rule', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'server:\n  max_connections: -5\nservices:\n  respmod:\n    backends: [nope]\n');
    const r = await cli(['--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}: server.max_connections:`);
    expect(r.stderr).toMatch(/must be an integer/);
  });

  it('a missing config file exits non-zero and names it', async () => {
    const r = await cli(['--config', '/nonexistent/icap-bridge.yaml']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('/nonexistent/icap-bridge.yaml');
  });

  it('logging.access_log_format squid: one text line per transaction in Squid\'s layout, JSON logs beside it', async () => {
    const srv = await startChildServer('logging:\n  access_log_format: squid\n');
    try {
      const c = await TestClient.connect(srv.port);
      c.write(buildRequest({ method: 'OPTIONS' }).first);
      expect((await c.read()).status).toBe(200);
      c.write(buildRequest({ method: 'REQMOD', reqHdr: httpRequestHead('http://example.com/a%20b?q=1'), headers: [['Allow', '204']] }).first);
      expect((await c.read()).status).toBe(204);
      const user = Buffer.from('josé').toString('base64');
      c.write(buildRequest({ body: [EICAR], headers: [['X-Client-Username', user]] }).first);
      expect((await c.read()).status).toBe(200);
      c.close();
      const text = await waitFor('three access lines', () => {
        const lines = srv.stdoutLines().filter((l) => !l.startsWith('{'));
        return lines.length >= 3 ? lines : undefined;
      });
      const [options, reqmod, respmod] = text.map((l) => l.split(/ +/));
      const time = expect.stringMatching(/^\d{10}\.\d{3}$/);
      const count = expect.stringMatching(/^\d+$/);
      const serviceAndId = (service: string) => expect.stringMatching(new RegExp(`^${service}/[0-9a-f]{8}-[0-9a-z]+$`));
      expect(options).toEqual([time, count, '127.0.0.1', 'NONE/200', count, 'OPTIONS', '-', '-', serviceAndId('respmod'), '-']);
      expect(reqmod).toEqual([time, count, '127.0.0.1', 'NOT_SCANNED/204', count, 'REQMOD', 'http://example.com/a%20b?q=1', '-', serviceAndId('reqmod'), '-']);
      expect(respmod).toEqual([time, count, '127.0.0.1', 'INFECTED/200', count, 'RESPMOD', 'http://example.com/file.bin', 'jos%C3%A9', serviceAndId('respmod'), 'EICAR-Test-File']);
      expect(Math.abs(Number(respmod![0]) * 1000 - Date.now())).toBeLessThan(60_000);
      // The server's own log lines stay JSON; no access line is.
      expect(srv.logs().some((l) => l.msg === 'icap-bridge started')).toBe(true);
      expect(srv.accessRecords()).toEqual([]);
    } finally {
      expect(await srv.stop('SIGTERM')).toBe(0);
    }
  });

  it('SIGTERM: finishes and exits 0', async () => {
    const srv = await startChildServer();
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    expect((await c.read()).status).toBe(200);
    c.close();
    expect(await srv.stop('SIGTERM')).toBe(0);
  });
});
