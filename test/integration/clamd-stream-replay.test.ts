/**
 * A clamd killed while a body streams to it costs no transaction when another clamd lives: the
 * stream ends `retryable`, and run-scans.ts scans the complete spool once more on the survivor
 * (src/pipeline/run-scans.ts). Two private clamd instances, the ICAP server in process, a
 * RESPMOD body sent in two halves with a SIGKILL of the clamd holding the stream in between.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createClamdBackend } from '../../src/backends/clamd/clamd-backend.js';
import { CLAMD_POOL_DEFAULTS } from '../../src/backends/clamd/clamd-config.js';
import { poolSettings } from '../../src/backends/pool/pool-settings.js';
import { HAVE_CLAMD, startClamd, type RunningClamd } from '../helpers/clamd.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, httpResponseHead } from '../helpers/icap-messages.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let clamds: RunningClamd[] = [];
let srv: TestServer | undefined;
let backend: Backend;

/** Filler that cannot contain a signature by accident. */
function filler(size: number): Buffer {
  return Buffer.alloc(size, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
}

beforeAll(async () => {
  if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
  clamds = await Promise.all([startClamd({ streamMaxLength: 16 * MiB }), startClamd({ streamMaxLength: 16 * MiB })]);
  const endpoints = clamds.map((c) => c.tcpEndpoint);
  backend = await createClamdBackend('clamav', {
    ...poolSettings(CLAMD_POOL_DEFAULTS, { health_interval_ms: 60_000 }),
    endpoints,
    stream_max_bytes: 16 * MiB,
    chunk_bytes: 65_536,
    connect_timeout_ms: 500,
    read_timeout_ms: 10_000,
    version_command: true,
  });
  // The config names the same backend so the service validates; the server uses ours.
  srv = await startTestServer(
    `backends:
  clamav:
    type: clamd
    endpoints: [${endpoints.map((e) => JSON.stringify(e)).join(', ')}]
services:
  respmod:
    methods: [RESPMOD]
    backends: [clamav]
    commit_on_idle: { enabled: false }
`,
    { backends: new Map([['clamav', backend]]) },
  );
});

afterAll(async () => {
  await srv?.close();
  await Promise.all(clamds.map((c) => c.stop()));
});

describe('a clamd killed mid-stream', () => {
  it('the clean body is answered clean by the surviving clamd (the spool replayed)', async () => {
    const payload = filler(6 * MiB);
    const { first } = buildRequest({ resHdr: httpResponseHead(payload.length), body: [payload], headers: [['Allow', '204']] });
    const record = srv!.nextRecord();
    const c = await TestClient.connect(srv!.port);
    try {
      const half = Math.floor(first.length / 2);
      c.write(first.subarray(0, half));
      // Wait (bounded) until the stream holds a slot on one clamd, then kill that one.
      let streaming: string | undefined;
      for (let i = 0; i < 200 && streaming === undefined; i++) {
        streaming = backend.status().find((s) => s.inFlight > 0)?.endpoint;
        if (streaming === undefined) await sleep(10);
      }
      expect(streaming).toBeDefined();
      const victim = clamds.find((cl) => cl.tcpEndpoint === streaming)!;
      const survivor = clamds.find((cl) => cl !== victim)!;
      await sleep(50); // some body bytes are on the wire to it
      await victim.kill('SIGKILL');
      c.write(first.subarray(half));

      const r = await c.read(20_000);
      expect(r.status).toBe(204);
      const rec = await record;
      console.log(`killed ${victim.tcpEndpoint} mid-stream; access record: ${JSON.stringify({ verdict: rec.verdict, reason: rec.reason, scans: rec.scans })}`);
      expect(rec.verdict).toBe('clean');
      expect(rec.scans).toEqual([expect.objectContaining({ backend: 'clamav', outcome: 'clean', endpoint: survivor.tcpEndpoint })]);
      // The killed one is out of the pool now.
      expect(backend.status().find((s) => s.endpoint === victim.tcpEndpoint)?.healthy).toBe(false);
    } finally {
      c.close();
    }
  });
});
