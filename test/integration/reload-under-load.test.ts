/**
 * SIGHUP while Squid 5.7 sends traffic: each reload builds a new generation (config, services,
 * backends) for new requests, while requests already running finish on theirs, and a retired
 * generation closes its backends when its last request ends (src/server/generation.ts). Here the
 * services switch between clamd and the embedded engine every 0.3-1 s, so every reload retires a
 * generation with transactions in flight on it: clamd connections mid-INSTREAM, or bodies queued
 * for the engine's worker threads. With one process, and with two (the primary validates the file
 * and tells each worker to reload).
 *
 * What must hold: no infected download or upload gets through whole; every clean one arrives
 * whole; every reload is applied, none rejected; nothing is logged at error level; Squid never
 * suspends the service; the spool is empty after; and (one process) once Squid is gone, the
 * descriptors are back where they were, so no retired generation kept a clamd connection or a
 * worker thread. The config file is replaced by rename, so a reload never reads half a file.
 * Bounded: SOAK_MS per setup (12 s unless set), each request at most 60 s.
 */
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_CLAMD, startClamd } from '../helpers/clamd.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { startSquidStack } from '../helpers/squid-stack.js';
import { runSquidTraffic } from '../helpers/squid-traffic.js';
import { waitFor } from '../helpers/wait.js';

const SOAK_MS = Number(process.env.SOAK_MS ?? 12_000);
const CLIENTS = 8;
const REQUEST_MS = 60_000;

const openDescriptors = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

describe.each([1, 2])('SIGHUP under Squid traffic, %i process(es)', (processes) => {
  it.skipIf(!HAVE_CLAMD)('switching clamd ↔ the embedded engine loses nothing, lets nothing through, keeps nothing', async () => {
    const clamd = await startClamd({ streamMaxLength: 128 * 1024 * 1024, maxThreads: 6, maxQueue: 64 });
    const clamdYaml =
      `backends:\n  clamav: { type: clamd, endpoints: ["${clamd.tcpEndpoint}"], read_timeout_ms: 20000, stream_max_bytes: 134217728 }\n` +
      'services:\n  respmod: { methods: [RESPMOD], backends: [clamav] }\n  reqmod: { methods: [REQMOD], backends: [clamav] }\n';
    const embeddedYaml = 'services:\n  respmod: { methods: [RESPMOD] }\n  reqmod: { methods: [REQMOD] }\n';
    const serverYaml = processes > 1 ? `  processes: ${processes}\n` : '';
    const stack = await startSquidStack({ bridgeYaml: clamdYaml, serverYaml }).catch(async (err: unknown) => {
      await clamd.stop();
      throw err;
    });
    try {
      const configPath = join(stack.bridge.dir, 'icap-bridge.yaml');
      const common = readFileSync(configPath, 'utf8').replace(clamdYaml, '');
      const reloadWith = (yaml: string): void => {
        writeFileSync(`${configPath}.next`, common + yaml);
        renameSync(`${configPath}.next`, configPath);
        process.kill(stack.bridge.pid, 'SIGHUP');
      };
      const before = openDescriptors(stack.bridge.pid);
      const random = seededRandom(Number(process.env.SOAK_SEED ?? 20261123));
      const end = Date.now() + SOAK_MS;

      let reloads = 0;
      const reloader = async (): Promise<void> => {
        while (Date.now() < end - 1000) {
          await new Promise((r) => setTimeout(r, 300 + random(700)));
          reloadWith(reloads % 2 === 0 ? embeddedYaml : clamdYaml);
          reloads++;
        }
      };

      const [, { seen, problems }] = await Promise.all([reloader(), runSquidTraffic(stack, { clients: CLIENTS, until: end, random, requestMs: REQUEST_MS })]);
      console.log(`${processes} process(es), ${reloads} reloads: ${JSON.stringify(seen, null, 1)}`);

      expect(problems.slice(0, 20)).toEqual([]);
      for (const kind of ['download clean: whole', 'download infected: 403', 'upload clean: arrived', 'upload infected: 403']) {
        expect(seen[kind] ?? 0, kind).toBeGreaterThan(0);
      }
      expect(reloads).toBeGreaterThanOrEqual(8);
      // The last reload to the clamd setup, so the descriptors compare like with like.
      if (reloads % 2 === 1) {
        reloadWith(clamdYaml);
        reloads++;
      }
      // Once per reload from the serving process, or from the primary and each worker.
      const applied = (): number => stack.bridge.logs().filter((l) => l.msg === 'configuration reloaded').length;
      await waitFor('every reload logged as applied', () => applied() >= reloads);
      expect(stack.bridge.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
      expect(stack.squid.cacheLog()).not.toMatch(/suspend/i);
      await stack.squid.stop();
      await waitFor('an empty spool', () => readdirSync(stack.bridge.spoolDir, { recursive: true }).filter((f) => String(f).endsWith('.body')).length === 0);
      if (processes === 1) {
        await waitFor('the retired generations to close their clamd connections and worker threads', () => openDescriptors(stack.bridge.pid) <= before + 4);
      }
    } finally {
      await stack.stop();
      await clamd.stop();
    }
  }, SOAK_MS + 150_000);
});
