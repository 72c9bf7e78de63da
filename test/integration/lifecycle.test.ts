/**
 * Process lifecycle on the real CLI: SIGHUP reloads (new requests use the new configuration,
 * running ones finish with the old, an invalid file is rejected and the old one keeps serving,
 * the ISTag changes when verdicts may change); SIGTERM stops accepting, lets in-flight
 * transactions finish within shutdown_grace_ms, and exits 0. Signals that come while the server
 * is still starting are not fatal: SIGHUP reloads once it is up, SIGTERM stops it then (exit 0).
 */
import { connect, createServer, type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRequest, EICAR } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startChildServer, writeChildConfig, type ChildServer } from '../helpers/child-server.js';
import { handlesSignals, launchCli, type StartingCli } from '../helpers/starting-cli.js';
import { waitFor } from '../helpers/wait.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let srv: ChildServer | undefined;
let starting: StartingCli | undefined;
afterEach(async () => {
  await srv?.stop('SIGKILL');
  srv = undefined;
  starting?.kill();
  await starting?.exited;
  starting = undefined;
});

async function istag(port: number): Promise<string> {
  const c = await TestClient.connect(port);
  c.write(buildRequest({ method: 'OPTIONS' }).first);
  const tag = (await c.read()).header('ISTag')!;
  c.close();
  return tag;
}

function rewriteConfig(s: ChildServer, extra: string): void {
  writeFileSync(
    join(s.dir, 'icap-bridge.yaml'),
    `server:\n  listen: [{ host: 127.0.0.1, port: ${s.port} }]\n  timeouts: { shutdown_grace_ms: 3000 }\nspool:\n  directory: ${s.spoolDir}\n${extra}`,
  );
}

async function waitForLog(s: ChildServer, msg: string, after = 0, timeoutMs = 5000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = s.logs().slice(after).find((l) => l.msg === msg);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no log line "${msg}"`);
    await sleep(20);
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });
}

/**
 * Launches the CLI and sends `signal` as soon as the process handles it, checking that it is not
 * listening yet: the signal lands during start-up, where Node.js's default action would kill it.
 */
async function signalDuringStartup(signal: NodeJS.Signals): Promise<{ cli: StartingCli; port: number; spoolDir: string }> {
  const { configPath, port, spoolDir } = await writeChildConfig();
  const cli = launchCli(configPath);
  starting = cli;
  await waitFor('signal handlers', () => handlesSignals(cli.pid) || accepts(port), { timeoutMs: 15_000, intervalMs: 2 });
  expect(await accepts(port), 'listening before it handled the signal').toBe(false);
  process.kill(cli.pid, signal);
  return { cli, port, spoolDir };
}

/** Sends all of an EICAR RESPMOD but the last-chunk, so the transaction stays in flight. */
async function startInFlight(port: number): Promise<{ c: TestClient; finish: () => void }> {
  const req = buildRequest({ body: ['x'.repeat(1000), EICAR], headers: [['Allow', '204']] });
  const c = await TestClient.connect(port);
  c.write(req.first.subarray(0, req.first.length - 5));
  await sleep(100);
  return { c, finish: () => c.write(req.first.subarray(req.first.length - 5)) };
}

describe('SIGHUP reload', () => {
  it('applies a new configuration to new requests, changes the ISTag, and rejects an invalid file', async () => {
    srv = await startChildServer();
    const before = await istag(srv.port);

    const inFlight = await startInFlight(srv.port);
    const logCount = srv.logs().length;
    rewriteConfig(srv, 'backends:\n  builtin:\n    type: builtin\n    eicar: false\n');
    process.kill(srv.pid, 'SIGHUP');
    const reloaded = await waitForLog(srv, 'configuration reloaded', logCount);
    expect(reloaded.istags).not.toEqual(reloaded.previous_istags);

    // The transaction that began before the reload finishes with the old configuration: blocked.
    inFlight.finish();
    const old = await inFlight.c.read();
    expect(old.header('X-Infection-Found')).toContain('EICAR-Test-File');
    inFlight.c.close();

    // New requests use the new one: EICAR detection is off now.
    const after = await istag(srv.port);
    expect(after).not.toBe(before);
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ body: [EICAR], headers: [['Allow', '204']] }).first);
    expect((await c.read()).status).toBe(204);
    c.close();

    // An invalid file is rejected with a logged error; the running configuration keeps serving.
    const count2 = srv.logs().length;
    writeFileSync(join(srv.dir, 'icap-bridge.yaml'), 'server:\n  max_connections: nope\n');
    process.kill(srv.pid, 'SIGHUP');
    const rejected = await waitForLog(srv, 'reload rejected: keeping the running configuration', count2);
    expect(JSON.stringify(rejected)).toContain('server.max_connections');
    expect(await istag(srv.port)).toBe(after);
  });

  it('keeps the ISTag when nothing that changes verdicts changed', async () => {
    srv = await startChildServer();
    const before = await istag(srv.port);
    const count = srv.logs().length;
    rewriteConfig(srv, 'logging:\n  level: debug\n');
    process.kill(srv.pid, 'SIGHUP');
    await waitForLog(srv, 'configuration reloaded', count);
    expect(await istag(srv.port)).toBe(before);
  });
});

describe('SIGTERM', () => {
  it('stops accepting, finishes the in-flight transaction, exits 0', async () => {
    srv = await startChildServer('', '  timeouts: { shutdown_grace_ms: 5000 }\n');
    const inFlight = await startInFlight(srv.port);
    const exit = srv.stop('SIGTERM');
    await sleep(200);
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(srv!.port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    inFlight.finish();
    const r = await inFlight.c.read();
    expect(r.header('X-Infection-Found')).toContain('EICAR-Test-File');
    expect(await exit).toBe(0);
    srv = undefined;
  });

  it('cuts a transaction that outlives the grace period, and still exits 0', async () => {
    srv = await startChildServer('', '  timeouts: { shutdown_grace_ms: 300 }\n');
    const inFlight = await startInFlight(srv.port);
    const started = Date.now();
    expect(await srv.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(3000);
    await inFlight.c.waitClosed();
    srv = undefined;
  });

  it('transactions cut at the end of the grace period leave no temp file behind (decoded bodies too)', async () => {
    // A clamd that answers PING and VERSION but never gives a verdict: each gzip body's decoded
    // copy sits in a temp file under a scan that does not end before the grace period does. The
    // cut transactions' files are removed by asynchronous disposals; the exit must come after them.
    const clamd = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (d: Buffer) => {
        const command = d.toString('latin1');
        if (command.startsWith('zPING')) socket.end('PONG\0');
        else if (command.startsWith('zVERSION')) socket.end('ClamAV 1.0.0/1/Thu Jan  1 00:00:00 2026\0');
        else socket.on('data', () => {}); // INSTREAM: read everything, answer nothing
      });
    });
    await new Promise<void>((resolve) => clamd.listen(0, '127.0.0.1', resolve));
    const clamdPort = (clamd.address() as AddressInfo).port;
    try {
      srv = await startChildServer(
        `backends:\n  stuck: { type: clamd, endpoints: ['127.0.0.1:${clamdPort}'], read_timeout_ms: 60000 }\nservices:\n  respmod: { methods: [RESPMOD], backends: [stuck] }\n`,
        '  timeouts: { shutdown_grace_ms: 300 }\n',
      );
      // Hex text: compressible enough to be a real gzip body, far below max_ratio.
      const gz = gzipSync(Buffer.from(randomBytes(2 * 1024 * 1024).toString('hex')));
      const clients: TestClient[] = [];
      for (let i = 0; i < 6; i++) {
        const req = buildRequest({ resHdr: 'HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n', body: [gz], headers: [['Allow', '204']] });
        const c = await TestClient.connect(srv.port);
        c.write(req.first);
        clients.push(c);
      }
      const spoolDir = srv.spoolDir;
      await waitFor('decoded copies in the spool', () => readdirSync(spoolDir).length >= 6, { timeoutMs: 10_000 });
      await sleep(300);
      expect(await srv.stop('SIGTERM')).toBe(0);
      srv = undefined;
      expect(readdirSync(spoolDir)).toEqual([]);
      for (const c of clients) c.close();
    } finally {
      clamd.close();
    }
  });
});

describe('signals during start-up', () => {
  it('SIGHUP: not fatal; the file is reloaded once the server is up', async () => {
    const { cli, port } = await signalDuringStartup('SIGHUP');
    const started = await waitFor('"icap-bridge started"', () => cli.logs().findIndex((l) => l.msg === 'icap-bridge started') + 1 || undefined, { timeoutMs: 15_000 });
    const deferred = cli.logs().findIndex((l) => l.msg === 'SIGHUP came during start-up: reloading now that the server has started');
    expect(deferred).toBeGreaterThanOrEqual(started);
    await waitFor('configuration reloaded', () => cli.logs().find((l) => l.msg === 'configuration reloaded'));
    expect(await accepts(port)).toBe(true);
    process.kill(cli.pid, 'SIGTERM');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM: stops as soon as the server is up, exits 0, leaves nothing behind', async () => {
    const { cli, spoolDir } = await signalDuringStartup('SIGTERM');
    const started = Date.now();
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(cli.logs().find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM', during_startup: true });
    expect(cli.logs().some((l) => l.msg === 'icap-bridge stopped')).toBe(true);
    expect(cli.stderr()).toBe('');
    expect(readdirSync(spoolDir)).toEqual([]);
  });
});
