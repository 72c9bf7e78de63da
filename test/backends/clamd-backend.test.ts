/**
 * The clamd backend against scripted in-process clamd stand-ins (real sockets, port 0 / a temp
 * UNIX socket): framing, early replies, timeouts, clamd's silent queue-full state, retries,
 * concurrency limits, abort. The real daemon is exercised in test/integration/clamd.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanMeta, StreamingScan } from '../../src/backends/backend.js';
import { createClamdBackend, type ClamdBackendConfig } from '../../src/backends/clamd/clamd-backend.js';
import { clamdTestConfig } from '../helpers/clamd-backend-config.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';

const META: ScanMeta = { transactionId: 't-1', method: 'RESPMOD', clientAddress: '127.0.0.1' };
const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-fake-clamd-'));

/** How the stand-in answers INSTREAM. */
type Mode =
  | { kind: 'verdict'; reply: string }
  /** Answers `reply` and closes once `after` body bytes arrived (clamd's own size limit). */
  | { kind: 'early'; after: number; reply: string }
  /** Reads everything, never answers (a very slow scan). */
  | { kind: 'hang' }
  /** Closes without a reply after the terminator (clamd crashed while scanning). */
  | { kind: 'crash' }
  /** Connection accepted by the kernel, nothing ever read: clamd with a full queue (spec §5). */
  | { kind: 'silent' }
  /** Reads nothing until resume() is called. */
  | { kind: 'paused' };

interface Fake {
  endpoint: string;
  mode: Mode;
  version: string;
  /** INSTREAM sessions: chunk lengths seen and body received. */
  sessions: { chunks: number[]; bytes: number; body: Buffer; terminated: boolean }[];
  connections: number;
  resume(): void;
  close(): Promise<void>;
}

const fakes: Fake[] = [];
const backends: Backend[] = [];

async function fakeClamd(mode: Mode, where: 'tcp' | 'unix' = 'tcp'): Promise<Fake> {
  const sockets = new Set<Socket>();
  /** Paused INSTREAM sockets and how to carry on with what they already received. */
  const paused = new Map<Socket, () => void>();
  const fake: Fake = {
    endpoint: '',
    mode,
    version: 'ClamAV 9.9.9/123/Thu Jan  1 00:00:00 2026',
    sessions: [],
    connections: 0,
    resume: () => {
      for (const [socket, kick] of paused) {
        socket.resume();
        kick();
      }
      paused.clear();
    },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  const server: Server = createServer((socket) => {
    fake.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (fake.mode.kind === 'silent') {
      socket.pause();
      return;
    }
    let buf = Buffer.alloc(0);
    let command: string | null = null;
    let session: Fake['sessions'][number] | null = null;
    const bodyParts: Buffer[] = [];
    let received = 0;
    let holding = false;
    const process = (): void => {
      if (command === null) {
        const nul = buf.indexOf(0);
        if (nul === -1) return;
        command = buf.subarray(0, nul).toString('latin1');
        buf = buf.subarray(nul + 1);
        if (command === 'zPING') return void socket.end('PONG\0');
        if (command === 'zVERSION') return void socket.end(`${fake.version}\0`);
        if (command !== 'zINSTREAM') return void socket.end('UNKNOWN COMMAND\0');
        session = { chunks: [], bytes: 0, body: Buffer.alloc(0), terminated: false };
        fake.sessions.push(session);
        if (fake.mode.kind === 'paused') {
          // Stop reading: the kernel buffers fill up and the client's writes back up.
          holding = true;
          socket.pause();
          paused.set(socket, () => {
            holding = false;
            process();
          });
          return;
        }
      }
      if (session === null || session.terminated || holding) return;
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len === 0) {
          session.terminated = true;
          session.body = Buffer.concat(bodyParts);
          buf = buf.subarray(4);
          const m = fake.mode;
          if (m.kind === 'crash') socket.destroy();
          else if (m.kind === 'verdict' || m.kind === 'early') socket.end(`${m.reply}\0`);
          else if (m.kind === 'paused') socket.end('stream: OK\0');
          return;
        }
        if (buf.length < 4 + len) return;
        session.chunks.push(len);
        bodyParts.push(buf.subarray(4, 4 + len));
        received += len;
        session.bytes = received;
        buf = buf.subarray(4 + len);
        const m = fake.mode;
        if (m.kind === 'early' && received >= m.after) {
          socket.end(`${m.reply}\0`);
          session.terminated = true;
          return;
        }
      }
    };
    socket.on('data', (data: Buffer) => {
      buf = Buffer.concat([buf, data]);
      process();
    });
  });
  if (where === 'unix') {
    const path = join(dir, `fake-${fakes.length}.sock`);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    fake.endpoint = path;
  } else {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.endpoint = `127.0.0.1:${(server.address() as { port: number }).port}`;
  }
  fakes.push(fake);
  return fake;
}

async function freePortNumber(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A port nothing listens on. */
async function deadEndpoint(): Promise<string> {
  return `127.0.0.1:${await freePortNumber()}`;
}

function config(endpoints: string[], overrides: Partial<ClamdBackendConfig> = {}): ClamdBackendConfig {
  return clamdTestConfig(endpoints, overrides);
}

async function backendFor(endpoints: string[], overrides: Partial<ClamdBackendConfig> = {}): Promise<Backend> {
  const b = await createClamdBackend('clamav', config(endpoints, overrides));
  backends.push(b);
  return b;
}

const signal = (): AbortSignal => new AbortController().signal;

/** Writes `parts` honouring backpressure, then ends. */
async function stream(scan: StreamingScan, parts: Buffer[]): Promise<BackendResult> {
  for (const part of parts) if (!scan.write(part)) await new Promise<void>((resolve) => scan.onDrain(resolve));
  return scan.end();
}

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('clamd backend (scripted clamd)', () => {
  it('frames the body in chunk_bytes pieces and ends with a zero-length chunk', async () => {
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    const b = await backendFor([fake.endpoint]);
    const body = Buffer.alloc(2500, 'x');
    const result = await stream(b.openStream!(META, signal()), [body.subarray(0, 1200), body.subarray(1200)]);
    expect(result).toMatchObject({ outcome: 'clean', backend: 'clamav', endpoint: fake.endpoint });
    expect(fake.sessions).toHaveLength(1);
    expect(fake.sessions[0]!.terminated).toBe(true);
    expect(fake.sessions[0]!.body.equals(body)).toBe(true);
    expect(Math.max(...fake.sessions[0]!.chunks)).toBeLessThanOrEqual(1000);
  });

  it('works over a UNIX socket, and reads a detection name with spaces (Dr.Web style)', async () => {
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: EICAR Test File (NOT a Virus!) FOUND' }, 'unix');
    const b = await backendFor([fake.endpoint]);
    const result = await b.scan(spooledBodyFromBuffer(Buffer.from('anything')), META, signal());
    expect(result).toMatchObject({ outcome: 'infected', threats: ['EICAR Test File (NOT a Virus!)'] });
  });

  it('stops at stream_max_bytes: too-large, and clamd never sees a byte past the limit', async () => {
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    const b = await backendFor([fake.endpoint], { stream_max_bytes: 3000 });
    const scan = b.openStream!(META, signal());
    const result = await stream(scan, [Buffer.alloc(2000), Buffer.alloc(2000), Buffer.alloc(2000)]);
    expect(result).toMatchObject({ outcome: 'error', kind: 'too-large' });
    await new Promise((r) => setTimeout(r, 50));
    const seen = fake.sessions.reduce((n, s) => n + s.bytes, 0);
    expect(seen).toBeLessThanOrEqual(3000);
    expect(fake.sessions.every((s) => !s.terminated)).toBe(true);
    // scan() knows the size up front and does not connect at all.
    const before = fake.connections;
    expect(await b.scan(spooledBodyFromBuffer(Buffer.alloc(3001)), META, signal())).toMatchObject({ outcome: 'error', kind: 'too-large' });
    expect(fake.connections).toBe(before);
  });

  it('reads an early reply (clamd closing on its own size limit) as too-large', async () => {
    const fake = await fakeClamd({ kind: 'early', after: 5000, reply: 'INSTREAM size limit exceeded. ERROR' });
    const b = await backendFor([fake.endpoint]);
    const parts = Array.from({ length: 200 }, () => Buffer.alloc(1000, 'a'));
    const result = await stream(b.openStream!(META, signal()), parts);
    expect(result).toMatchObject({ outcome: 'error', kind: 'too-large', message: 'clamd: INSTREAM size limit exceeded. ERROR' });
  });

  it('never believes "stream: OK" sent before the end of the stream', async () => {
    const fake = await fakeClamd({ kind: 'early', after: 1, reply: 'stream: OK' });
    const b = await backendFor([fake.endpoint]);
    const scan = b.openStream!(META, signal());
    scan.write(Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 100));
    expect(await scan.end()).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringContaining('before the end of the stream') });
  });

  it('a verdict that does not come within read_timeout_ms is a timeout (clamd answers PING: busy, not full)', async () => {
    const fake = await fakeClamd({ kind: 'hang' });
    const b = await backendFor([fake.endpoint], { read_timeout_ms: 800, connect_timeout_ms: 200 });
    const result = await b.scan(spooledBodyFromBuffer(Buffer.from('slow')), META, signal());
    expect(result).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(result.durationMs).toBeGreaterThanOrEqual(750);
  });

  it('a clamd that answers PING but never reads this stream: scan() ends as a timeout after read_timeout_ms', async () => {
    // The PING probes say "busy, not full" (PONG) and stop after three; nothing else bounded the wait.
    const fake = await fakeClamd({ kind: 'paused' });
    const b = await backendFor([fake.endpoint], { read_timeout_ms: 1_000, connect_timeout_ms: 200, chunk_bytes: 65536, stream_max_bytes: 64 * 1024 * 1024 });
    const started = Date.now();
    const pending = b.scan(spooledBodyFromBuffer(Buffer.alloc(16 * 1024 * 1024, 1)), META, signal());
    const result = await Promise.race([pending, new Promise<'still pending'>((r) => setTimeout(() => r('still pending'), 6_000))]);
    expect(result).toMatchObject({ outcome: 'error', kind: 'timeout', message: expect.stringContaining('read none of the stream') });
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(b.status()[0]).toMatchObject({ inFlight: 0 });
    fake.resume();
  });

  it('accepted but never read (clamd queue full) is overloaded, long before read_timeout_ms', async () => {
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    const b = await backendFor([fake.endpoint], { read_timeout_ms: 20_000, connect_timeout_ms: 200 });
    expect(b.status()[0]!.healthy).toBe(true);
    fake.mode = { kind: 'silent' };
    const started = Date.now();
    const result = await b.scan(spooledBodyFromBuffer(Buffer.from('small body')), META, signal());
    expect(result).toMatchObject({ outcome: 'error', kind: 'overloaded', message: expect.stringContaining('queue full') });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(b.status()[0]!.healthy).toBe(false);
  });

  it('a large body to a silent clamd stalls the socket and is overloaded too', async () => {
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    const b = await backendFor([fake.endpoint], { read_timeout_ms: 20_000, connect_timeout_ms: 200, chunk_bytes: 65536, stream_max_bytes: 64 * 1024 * 1024 });
    fake.mode = { kind: 'silent' };
    const parts = Array.from({ length: 64 }, () => Buffer.alloc(1024 * 1024));
    const result = await stream(b.openStream!(META, signal()), parts);
    expect(result).toMatchObject({ outcome: 'error', kind: 'overloaded' });
  });

  it('connection refused: unreachable, endpoint unhealthy, version unavailable', async () => {
    const b = await backendFor([await deadEndpoint()]);
    expect(b.version).toBe('clamd unavailable');
    expect(b.status()).toEqual([expect.objectContaining({ healthy: false, inFlight: 0, queued: 0 })]);
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, signal())).toMatchObject({ outcome: 'error', kind: 'unreachable' });
    const s = b.openStream!(META, signal());
    s.write(Buffer.from('x'));
    expect(await s.end()).toMatchObject({ outcome: 'error', kind: 'unreachable', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('a connect that does not complete within connect_timeout_ms is unreachable', async () => {
    // A listener with a full accept queue: a child process listens with backlog 1 and then blocks
    // its event loop, so the kernel drops further SYNs and connects hang (loopback only).
    const port = await freePortNumber();
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen({ port: ${port}, host: '127.0.0.1', backlog: 1 }, () => {
         process.stdout.write('ready\\n');
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000);
       })`,
    ], { stdio: ['ignore', 'pipe', 'ignore'] });
    const fillers: Socket[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', () => resolve());
        child.once('exit', () => reject(new Error('listener exited')));
      });
      // (backlog 0 would mean Node's default of 511: `options.backlog || 511`.)
      for (let i = 0; i < 4; i++) {
        const s = createConnection({ host: '127.0.0.1', port });
        s.on('error', () => {});
        fillers.push(s);
      }
      await new Promise((r) => setTimeout(r, 100));
      const b = await backendFor([`127.0.0.1:${port}`], { connect_timeout_ms: 200 });
      expect(b.status()[0]!.healthy).toBe(false);
      const result = await b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, signal());
      expect(result).toMatchObject({ outcome: 'error', kind: 'unreachable', message: expect.stringContaining('timed out after 200 ms') });
    } finally {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    }
  });

  it('a missing UNIX socket is unreachable', async () => {
    const b = await backendFor([join(dir, 'nobody-here.sock')]);
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, signal())).toMatchObject({ outcome: 'error', kind: 'unreachable', message: expect.stringContaining('ENOENT') });
  });

  it('streaming retries a failed connect once on another endpoint, the held body intact', async () => {
    const dying = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    const b = await backendFor([dying.endpoint, fake.endpoint]);
    // Still marked healthy (the next PING is a minute away), so the first scan tries it first.
    await dying.close();
    expect(b.status().map((s) => s.healthy)).toEqual([true, true]);
    const results: BackendResult[] = [];
    for (let i = 0; i < 3; i++) results.push(await stream(b.openStream!(META, signal()), [Buffer.from('hello '), Buffer.from('world')]));
    expect(results.map((r) => r.outcome)).toEqual(['clean', 'clean', 'clean']);
    expect(results.map((r) => r.endpoint)).toEqual([fake.endpoint, fake.endpoint, fake.endpoint]);
    expect(fake.sessions.map((s) => s.body.toString())).toEqual(['hello world', 'hello world', 'hello world']);
    expect(b.status().map((s) => s.healthy)).toEqual([false, true]);
  });

  it('scan() replays the spooled body on another endpoint after a lost connection', async () => {
    const crashing = await fakeClamd({ kind: 'crash' });
    const good = await fakeClamd({ kind: 'verdict', reply: 'stream: Eicar-Test-Sig.UNOFFICIAL FOUND' });
    const b = await backendFor([crashing.endpoint, good.endpoint]);
    for (let i = 0; i < 2; i++) {
      const result = await b.scan(spooledBodyFromBuffer(Buffer.from('body')), META, signal());
      expect(result).toMatchObject({ outcome: 'infected', threats: ['Eicar-Test-Sig.UNOFFICIAL'] });
    }
    expect(crashing.sessions.length).toBeGreaterThanOrEqual(1);
  });

  it('a lost connection while streaming is an error, never clean', async () => {
    const fake = await fakeClamd({ kind: 'crash' });
    const b = await backendFor([fake.endpoint]);
    const result = await stream(b.openStream!(META, signal()), [Buffer.from('body')]);
    expect(result).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringContaining('without a reply') });
  });

  it('max_concurrency per endpoint: further scans queue (status shows it), beyond max_queue they are overloaded', async () => {
    const fake = await fakeClamd({ kind: 'paused' });
    const b = await backendFor([fake.endpoint], { max_concurrency: 1, max_queue: 1 });
    const first = b.openStream!(META, signal());
    first.write(Buffer.from('one'));
    const p1 = first.end();
    const p2 = b.scan(spooledBodyFromBuffer(Buffer.from('two')), META, signal());
    const p3 = b.scan(spooledBodyFromBuffer(Buffer.from('three')), META, signal());
    expect(await p3).toMatchObject({ outcome: 'error', kind: 'overloaded' });
    expect(b.status()[0]).toMatchObject({ inFlight: 1, queued: 1 });
    // p2 connects (and is paused) only once p1 gave its slot back.
    const resumer = setInterval(() => fake.resume(), 20);
    try {
      expect(await p1).toMatchObject({ outcome: 'clean' });
      expect(await p2).toMatchObject({ outcome: 'clean' });
    } finally {
      clearInterval(resumer);
    }
    expect(b.status()[0]).toMatchObject({ inFlight: 0, queued: 0 });
  });

  it('write() returns false while clamd does not read, and onDrain fires once it does', async () => {
    const fake = await fakeClamd({ kind: 'paused' });
    const b = await backendFor([fake.endpoint], { chunk_bytes: 65536, stream_max_bytes: 64 * 1024 * 1024, connect_timeout_ms: 5000 });
    const scan = b.openStream!(META, signal());
    scan.write(Buffer.from('first'));
    await waitFor(() => fake.sessions.length === 1, 2000);
    let writes = 0;
    while (scan.write(Buffer.alloc(256 * 1024)) && writes < 256) {
      writes++;
      await new Promise((r) => setImmediate(r));
    }
    expect(writes).toBeLessThan(256);
    const drained = new Promise<void>((resolve) => scan.onDrain(resolve));
    fake.resume();
    await drained;
    expect(await scan.end()).toMatchObject({ outcome: 'clean' });
    expect(fake.sessions[0]!.bytes).toBe(5 + writes * 256 * 1024 + 256 * 1024);
  });

  it('abort() and the signal release the connection and resolve end() with an error', async () => {
    const fake = await fakeClamd({ kind: 'hang' });
    const b = await backendFor([fake.endpoint]);
    const scan = b.openStream!(META, signal());
    scan.write(Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 30));
    scan.abort('client went away');
    expect(await scan.end()).toMatchObject({ outcome: 'error', message: 'scan aborted: client went away' });
    const controller = new AbortController();
    const pending = b.scan(spooledBodyFromBuffer(Buffer.from('y')), META, controller.signal);
    await new Promise((r) => setTimeout(r, 30));
    controller.abort(new Error('transaction timeout'));
    expect(await pending).toMatchObject({ outcome: 'error', message: expect.stringContaining('transaction timeout') });
    expect(b.status()[0]).toMatchObject({ inFlight: 0 });
  });

  it('version: from VERSION, "clamd unknown" when disabled or refused', async () => {
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    expect((await backendFor([fake.endpoint])).version).toBe('clamd ClamAV 9.9.9/123/Thu Jan  1 00:00:00 2026');
    expect((await backendFor([fake.endpoint], { version_command: false })).version).toBe('clamd unknown');
    fake.version = 'COMMAND UNAVAILABLE';
    expect((await backendFor([fake.endpoint])).version).toBe('clamd unknown');
  });

  it('health checks bring an endpoint back and update the version', async () => {
    const fake = await fakeClamd({ kind: 'verdict', reply: 'stream: OK' });
    const b = await backendFor([fake.endpoint], { health_interval_ms: 100 });
    fake.mode = { kind: 'silent' };
    await waitFor(() => b.status()[0]!.healthy === false, 3000);
    fake.mode = { kind: 'verdict', reply: 'stream: OK' };
    fake.version = 'ClamAV 9.9.9/124/Fri Jan  2 00:00:00 2026';
    await waitFor(() => b.status()[0]!.healthy && b.version.includes('/124/'), 3000);
  });

  it('close() ends running scans with an error and refuses new ones', async () => {
    const fake = await fakeClamd({ kind: 'hang' });
    const b = await backendFor([fake.endpoint]);
    const scan = b.openStream!(META, signal());
    scan.write(Buffer.from('x'));
    const pending = scan.end();
    await b.close();
    expect(await pending).toMatchObject({ outcome: 'error', kind: 'backend-error' });
    expect(await b.scan(spooledBodyFromBuffer(Buffer.from('x')), META, signal())).toMatchObject({ outcome: 'error' });
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
