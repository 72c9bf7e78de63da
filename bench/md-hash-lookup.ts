/**
 * MetaDefender's hash_lookup on a large spooled body whose hash the emulator knows: the time from
 * the body's end to the verdict, with the digest the transaction computed as the body arrived
 * (ScanMeta.bodySha256) and without it (the backend reads the spool to hash it). Alternating, in
 * one process, against emulators/metadefender on loopback.
 *
 *   node --import tsx bench/md-hash-lookup.ts [--mib 256] [--rounds 3]
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEmulator } from '../emulators/metadefender/emulator.js';
import type { ScanMeta } from '../src/backends/backend.js';
import { createMetaDefenderBackend } from '../src/backends/metadefender/metadefender-backend.js';
import { BodySpool } from '../src/pipeline/spool.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' }, rounds: { type: 'string', default: '3' } } });
const mib = Number(values.mib);
const rounds = Number(values.rounds);

const dir = await mkdtemp(join(tmpdir(), 'icap-bridge-md-hash-'));
const spool = new BodySpool({ memoryBytes: 0, directory: dir });
try {
  const chunk = Buffer.alloc(1 << 20, 'q');
  const hash = createHash('sha256');
  for (let i = 0; i < mib; i++) {
    hash.update(chunk);
    if (!spool.write(chunk)) await new Promise((resolve) => spool.once('drain', resolve));
  }
  const body = await spool.end();
  const digest = hash.digest('hex');
  const em = await startEmulator({ scanDurationMs: 1, hashes: [{ sha256: digest, name: 'Known.Bad' }] });
  const backend = await createMetaDefenderBackend({
    name: 'core',
    endpoints: [em.url],
    apikey: '',
    rule: '',
    timeoutMs: 60_000,
    pollInitialMs: 5,
    pollMaxMs: 40,
    hashLookup: true,
    sanitize: false,
    maxFileBytes: 0,
    spool: { memoryBytes: 65_536, directory: dir },
    pool: { health_interval_ms: 0 },
  });
  const meta: ScanMeta = { transactionId: 'bench', method: 'RESPMOD', clientAddress: '127.0.0.1' };
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const withDigest of [false, true]) {
        const started = performance.now();
        const cpu = process.cpuUsage();
        const result = await backend.scan(body, withDigest ? { ...meta, bodySha256: digest } : meta, new AbortController().signal);
        const used = process.cpuUsage(cpu);
        const label = withDigest ? 'digest in ScanMeta' : 'spool hashed     ';
        console.log(`#${round} ${mib} MiB ${label} ${result.outcome}: ${(performance.now() - started).toFixed(1)} ms, ${((used.user + used.system) / 1000).toFixed(1)} ms CPU`);
      }
    }
  } finally {
    await backend.close();
    await em.close();
  }
} finally {
  await spool.dispose();
  await rm(dir, { recursive: true, force: true });
}
