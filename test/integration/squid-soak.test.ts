/**
 * Real Squid 5.7 in front of icap-bridge under a mixed load, the way a proxy's users make it:
 * eight clients download clean and infected files (64 KiB to 100 MiB) and upload bodies (clean,
 * or with EICAR inside), and one request in eight gives up after 5-300 ms. Four icap-bridge
 * setups: the defaults (commit on idle), trickle delivery, 206 answers (Squid's icap_206_enable
 * on), and clamd behind the services instead of the embedded engine. This soak found that
 * cutting infected downloads by closing the ICAP connection made Squid suspend the service for
 * everyone (cut_after_commit, squid-resilience), and, with clamd, an abort that landed while the
 * spool closed its file logged as an internal error (test/server/errors.test.ts).
 *
 * What must hold, for each setup:
 * - no infected file or upload gets through whole (a download arrives cut or as the 403 page, an
 *   upload never reaches the origin);
 * - every clean download and upload that was not given up arrives whole, byte-identical: no 500
 *   from a suspended ICAP service, no stall;
 * - nothing logged at error level or above, the spool empty, and once Squid is gone icap-bridge's
 *   descriptors are back where they were (within 4).
 * Bounded: SOAK_MS per setup (15 s unless set), each request at most 60 s; SOAK_SEED=N draws
 * another sequence of requests.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HAVE_CLAMD, startClamd } from '../helpers/clamd.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { type SquidOptions } from '../helpers/squid.js';
import { startSquidStack } from '../helpers/squid-stack.js';
import { runSquidTraffic } from '../helpers/squid-traffic.js';
import { waitFor } from '../helpers/wait.js';

const SOAK_MS = Number(process.env.SOAK_MS ?? 15_000);
const CLIENTS = 8;
const REQUEST_MS = 60_000;

const openDescriptors = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** The bridge's YAML, and what to stop after the test (an engine it started). */
type Setup = () => Promise<{ yaml: string; stop?: () => Promise<unknown> }>;

const SETUPS: [string, Setup, Omit<SquidOptions, 'icapPort'>, boolean][] = [
  ['defaults (commit on idle)', async () => ({ yaml: '' }), {}, false],
  ['trickle delivery', async () => ({ yaml: 'services:\n  respmod: { methods: [RESPMOD], trickle: { enabled: true } }\n  reqmod: { methods: [REQMOD] }\n' }), {}, false],
  ['206 answers', async () => ({ yaml: 'services:\n  respmod: { methods: [RESPMOD], allow_204: false, allow_206: true }\n  reqmod: { methods: [REQMOD] }\n' }), { icap206: true }, false],
  [
    'clamd behind the services',
    async () => {
      // StreamMaxLength above the largest file, so every clean body is scanned whole.
      const clamd = await startClamd({ streamMaxLength: 128 * 1024 * 1024, maxThreads: 6, maxQueue: 64 });
      const backend = `clamav: { type: clamd, endpoints: ["${clamd.tcpEndpoint}"], read_timeout_ms: 20000, stream_max_bytes: 134217728 }`;
      return {
        yaml: `backends:\n  ${backend}\nservices:\n  respmod: { methods: [RESPMOD], backends: [clamav] }\n  reqmod: { methods: [REQMOD], backends: [clamav] }\n`,
        stop: () => clamd.stop(),
      };
    },
    {},
    !HAVE_CLAMD,
  ],
];

describe.each(SETUPS)('Squid soak: %s', (name, setup, squid, skip) => {
  it.skipIf(skip)('answers every request right, and frees everything', async () => {
    const engines = await setup();
    const stack = await startSquidStack({ bridgeYaml: engines.yaml, squid }).catch(async (err: unknown) => {
      await engines.stop?.();
      throw err;
    });
    try {
      const before = openDescriptors(stack.bridge.pid);
      const { seen, problems } = await runSquidTraffic(stack, {
        clients: CLIENTS,
        until: Date.now() + SOAK_MS,
        random: seededRandom(Number(process.env.SOAK_SEED ?? 20261123)),
        requestMs: REQUEST_MS,
        giveUp: true,
        largeFiles: true,
      });
      console.log(`${name}: ${JSON.stringify(seen, null, 1)}`);

      expect(problems.slice(0, 20)).toEqual([]);
      // Not vacuous: each kind of request was made and answered the expected way.
      for (const kind of ['download clean: whole', 'download infected: 403', 'upload clean: arrived', 'upload infected: 403']) {
        expect(seen[kind] ?? 0, kind).toBeGreaterThan(0);
      }
      expect(stack.squid.cacheLog()).not.toMatch(/suspend/i);
      expect(stack.bridge.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
      // Squid keeps idle ICAP connections open; once it is gone, icap-bridge must close its ends.
      await stack.squid.stop();
      await waitFor('icap-bridge to close the ICAP connections Squid left', () => openDescriptors(stack.bridge.pid) <= before + 4);
      await waitFor('an empty spool', () => readdirSync(stack.bridge.spoolDir).length === 0);
    } finally {
      await stack.stop();
      await engines.stop?.();
    }
  }, SOAK_MS + 150_000);
});
