/**
 * A MetaDefender adapter for in-process tests against the emulator: fast polls, no health rounds,
 * a spool that keeps 1 KiB in memory, and a scan bounded in time so a hang fails the test instead
 * of stalling it. And a scripted Core for poll answers the emulator never gives.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Backend, BackendResult, ScanMeta } from '../../src/backends/backend.js';
import { createMetaDefenderBackend, type MetaDefenderBackendOptions } from '../../src/backends/metadefender/metadefender-backend.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';

/** The adapter on `endpoints` with test defaults; `overrides` win. */
export function createTestMetaDefender(
  endpoints: readonly string[],
  spoolDirectory: string,
  timeoutMs: number,
  overrides: Partial<MetaDefenderBackendOptions> = {},
): Promise<Backend> {
  return createMetaDefenderBackend({
    name: 'md',
    endpoints: [...endpoints],
    apikey: '',
    rule: '',
    timeoutMs,
    pollInitialMs: 5,
    pollMaxMs: 20,
    hashLookup: false,
    sanitize: false,
    maxFileBytes: 0,
    spool: { memoryBytes: 1024, directory: spoolDirectory },
    pool: { health_interval_ms: 0 },
    ...overrides,
  });
}

/** The scan's result and how long it took; 'still pending' after `limitMs`. A sanitized copy is freed. */
export async function timedScan(b: Backend, body: Buffer, meta: ScanMeta, limitMs: number): Promise<{ result: BackendResult | 'still pending'; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'still pending'>((resolve) => (timer = setTimeout(() => resolve('still pending'), limitMs)));
  const result = await Promise.race([b.scan(spooledBodyFromBuffer(body), meta, new AbortController().signal), limit]);
  clearTimeout(timer);
  if (typeof result !== 'string' && result.outcome === 'sanitized') await result.dispose();
  return { result, ms: performance.now() - started };
}

/** What a scripted Core answers a poll of its one job with (see scriptedCore). */
export type PollScript =
  | { readonly status: number; readonly json: unknown }
  /** Bytes that are not HTTP: the client's parser fails (a protocol error, not a lost server). */
  | { readonly raw: string };

export interface ScriptedCore {
  readonly url: string;
  /** Paths of the cancel calls received, in order. */
  readonly cancels: string[];
  /** Polls of the job received. */
  readonly polls: () => number;
  close(): Promise<void>;
}

/**
 * A Core on loopback for answers the emulator, being faithful to the spec, never gives: every
 * upload is accepted as `upload` says (by default data_id `job1`), every poll of `job1` is answered
 * by `poll`, and cancels (§3, §7) are recorded and answered 200.
 */
export async function scriptedCore(poll: PollScript, upload: unknown = { data_id: 'job1' }): Promise<ScriptedCore> {
  const cancels: string[] = [];
  let polls = 0;
  const server = createServer((req, res) => {
    const json = (status: number, body: unknown): void => {
      const bytes = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
    };
    const path = req.url ?? '/';
    if (req.method === 'POST' && path === '/file') return void req.resume().once('end', () => json(200, upload));
    if (req.method === 'POST' && path.endsWith('/cancel')) {
      cancels.push(path);
      return json(200, { [path.split('/').at(-2)!]: 'cancelled' });
    }
    if (req.method === 'GET' && path === '/file/job1') {
      polls++;
      if ('raw' in poll) return void res.socket?.end(poll.raw);
      return json(poll.status, poll.json);
    }
    if (path === '/readyz' || path === '/version') return json(200, { product_id: 'MSCL', version: '5.10.1' });
    json(404, { err: 'Endpoint not found.' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cancels,
    polls: () => polls,
    close: () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    },
  };
}
