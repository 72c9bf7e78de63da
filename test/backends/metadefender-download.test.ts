/**
 * The sanitized download (specs/metadefender-core-api.md §5) when the spool cannot keep it: a
 * temp file that fails never sends 'drain' (src/pipeline/spool.ts), so a download that waited for
 * one hung past timeout_ms, kept its pool slot and left the temp file. And a file larger than
 * sanitizedLimit, announced or not, is 'too-large' with nothing kept. Every case must end as an
 * error, never clean, within the deadline, with the slot free and no temp file left.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend, ScanMeta } from '../../src/backends/backend.js';
import { CoreEndpoint } from '../../src/backends/metadefender/core-endpoint.js';
import { untilWritable } from '../../src/pipeline/spool-sink.js';
import { sanitizedLimit, type MetaDefenderBackendOptions } from '../../src/backends/metadefender/metadefender-backend.js';
import { liveSpoolFiles } from '../../src/pipeline/spool.js';
import { startEmulator, type EmulatorHandle } from '../../emulators/metadefender/emulator.js';
import { createTestMetaDefender, timedScan as timedScanFor } from '../helpers/metadefender-backend.js';

const META: ScanMeta = { transactionId: 'dl-1', method: 'RESPMOD', clientAddress: '127.0.0.1', url: 'http://origin.example/a.txt' };
/** The reviewer's repro: 2 MiB through a spool that keeps 1 KiB in memory, timeout_ms 1500. */
const BODY = Buffer.alloc(2 * 1024 * 1024, 0x41);
const TIMEOUT_MS = 1_500;

let emulators: EmulatorHandle[] = [];
let backends: Backend[] = [];
let servers: Server[] = [];
let dirs: string[] = [];

afterEach(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(emulators.map((e) => e.close()));
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  backends = [];
  emulators = [];
  servers = [];
  dirs = [];
});

async function spoolDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'icap-bridge-md-dl-'));
  dirs.push(dir);
  return dir;
}

async function backendFor(url: string, directory: string, overrides: Partial<MetaDefenderBackendOptions> = {}): Promise<Backend> {
  const b = await createTestMetaDefender([url], directory, TIMEOUT_MS, { sanitize: true, ...overrides });
  backends.push(b);
  return b;
}

/** The scan's result and how long it took; bounded, so a hang fails the test instead of stalling it. */
function timedScan(b: Backend, body: Buffer): ReturnType<typeof timedScanFor> {
  return timedScanFor(b, body, META, TIMEOUT_MS * 3);
}

function liveUnder(dir: string): string[] {
  return [...liveSpoolFiles()].filter((p) => p.startsWith(dir));
}

/** A Core that accepts anything, finishes at once with "Sanitized", and serves `converted` as the file. */
async function fakeCore(converted: (res: import('node:http').ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    const json = (body: unknown): void => {
      const bytes = Buffer.from(JSON.stringify(body));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
    };
    if (req.method === 'POST' && req.url === '/file') return void req.resume().once('end', () => json({ data_id: 'job1' }));
    if (req.url === '/file/job1') {
      return json({
        data_id: 'job1',
        scan_results: { progress_percentage: 100, scan_all_result_i: 0 },
        process_info: { progress_percentage: 100, result: 'Allowed', post_processing: { actions_ran: 'Sanitized', converted_destination: 's.txt' } },
      });
    }
    if (req.url === '/file/converted/job1') return converted(res);
    if (req.url === '/readyz' || req.url === '/version') return json({ version: '5.10.1' });
    if (req.url === '/stat/engines') return json([]);
    res.writeHead(404).end();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe('a temp file that fails during the sanitized download', () => {
  it('spool directory removed: an error within the deadline, the pool slot free, no temp file', async () => {
    const em = await startEmulator({ scanDurationMs: 20, sanitize: { all: true } });
    emulators.push(em);
    const dir = await spoolDir();
    const b = await backendFor(em.url, dir);
    await rm(dir, { recursive: true });
    const { result, ms } = await timedScan(b, BODY);
    expect(result).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringMatching(/sanitized file could not be stored.*ENOENT/) });
    expect(ms).toBeLessThan(TIMEOUT_MS + 500);
    expect(b.status()).toMatchObject([{ inFlight: 0 }]);
    expect(liveUnder(dir)).toEqual([]);
    // Nothing else is asked for: the Core file cannot be stored, whichever source it came from.
    expect(em.stats.requests.filter((r) => r.route === 'converted')).toHaveLength(1);
  });

  it('the wait for the spool ends when the scan\'s signal fires (deadline or client abort)', async () => {
    const never = { onWritable: (): void => {} };
    const controller = new AbortController();
    const waiting = untilWritable(never, controller.signal);
    controller.abort(new Error('scan timed out'));
    await expect(waiting).rejects.toThrow('scan timed out');
    const aborted = AbortSignal.abort(new Error('client gone'));
    await expect(untilWritable(never, aborted)).rejects.toThrow('client gone');
    // The spool's own call (drain or failure) ends it too.
    await expect(untilWritable({ onWritable: (listener) => setImmediate(listener) }, new AbortController().signal)).resolves.toBeUndefined();
  });
});

describe('sanitized file size (sanitizedLimit)', () => {
  it('4 × the body, at least 64 MiB; a set max_file_bytes bounds it too', () => {
    const MiB = 1024 * 1024;
    expect(sanitizedLimit(1_000, 0)).toBe(64 * MiB);
    expect(sanitizedLimit(100 * MiB, 0)).toBe(400 * MiB);
    expect(sanitizedLimit(1_000, 10 * MiB)).toBe(10 * MiB);
    expect(sanitizedLimit(100 * MiB, 1024 * MiB)).toBe(400 * MiB);
  });

  it('announced over the limit (Content-Length): too-large, nothing stored', async () => {
    const em = await startEmulator({ scanDurationMs: 0, sanitize: { all: true } });
    emulators.push(em);
    const dir = await spoolDir();
    // The emulator's sanitized file is the body plus a marker line: a few bytes over max_file_bytes.
    const b = await backendFor(em.url, dir, { maxFileBytes: BODY.length + 8 });
    const { result } = await timedScan(b, BODY);
    expect(result).toMatchObject({ outcome: 'error', kind: 'too-large', message: expect.stringMatching(/sanitized file is over/) });
    expect(b.status()).toMatchObject([{ inFlight: 0 }]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('sent without a length and past the limit: too-large once counted, the temp file removed', async () => {
    const url = await fakeCore((res) => {
      // Chunked: only counting tells the size. Four 1 MiB chunks against a 2 MiB limit.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(1024 * 1024, 0x42);
      let sent = 0;
      const more = (): void => {
        while (sent < 4 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    const dir = await spoolDir();
    const b = await backendFor(url, dir, { maxFileBytes: 2 * 1024 * 1024 });
    const { result } = await timedScan(b, Buffer.from('small body\n'));
    expect(result).toMatchObject({ outcome: 'error', kind: 'too-large' });
    expect(b.status()).toMatchObject([{ inFlight: 0 }]);
    expect(liveUnder(dir)).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a file within the limit is still taken whole', async () => {
    const url = await fakeCore((res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.alloc(300_000, 0x43));
    });
    const dir = await spoolDir();
    const core = new CoreEndpoint({ url, connections: 1, headers: {} });
    try {
      const got = await core.download({ path: '/file/converted/job1' }, { spool: { memoryBytes: 1024, directory: dir }, maxBytes: 300_000 }, new AbortController().signal);
      expect(got.tooLarge).toBeUndefined();
      expect(got.file?.body.size).toBe(300_000);
      expect(got.file?.body.path).not.toBeNull();
      await got.file?.dispose();
      const over = await core.download({ path: '/file/converted/job1' }, { spool: { memoryBytes: 1024, directory: dir }, maxBytes: 299_999 }, new AbortController().signal);
      expect(over).toEqual({ status: 200, tooLarge: true });
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await core.close();
    }
  });
});
