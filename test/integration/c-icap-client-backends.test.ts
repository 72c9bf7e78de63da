/**
 * Debian's c-icap-client against the compiled server, once per backend type: a service whose only
 * backend is that engine passes a clean file (204) and blocks EICAR with that engine's threat name
 * in X-Infection-Found (c-icap-client -v prints the ICAP headers).
 *
 * BACKENDS is a table: a row starts what its engine needs and returns its `backends:` entry and the
 * name the engine gives EICAR. The `icap` row scans through c-icap virus_scan on its own clamd.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulators/metadefender/emulator.js';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { HAVE_C_ICAP_VIRUS_SCAN, startCIcap } from '../helpers/c-icap.js';
import { HAVE_CLAMD, SIG, startClamd } from '../helpers/clamd.js';
import { EICAR } from '../helpers/icap-messages.js';

const run = promisify(execFile);
const CLIENT = '/usr/bin/c-icap-client';

interface StartedBackend {
  /** The backend's mapping, one line of YAML flow style. */
  readonly yaml: string;
  /** A name this engine (and no other row's engine) reports for EICAR. */
  readonly eicarThreat: string;
  stop(): Promise<void>;
}

interface BackendRow {
  readonly type: string;
  start(): Promise<StartedBackend>;
}

const BACKENDS: readonly BackendRow[] = [
  {
    type: 'builtin',
    start: async () => ({ yaml: '{ type: builtin, workers: 1 }', eicarThreat: 'EICAR-Test-File', stop: async () => {} }),
  },
  {
    type: 'clamd',
    start: async () => {
      if (!HAVE_CLAMD) throw new Error('clamd/sigtool not installed: apt-get install clamav-daemon clamav (scripts/test-all.sh does)');
      const clamd = await startClamd();
      return { yaml: `{ type: clamd, endpoints: ["${clamd.socketPath}"] }`, eicarThreat: SIG.eicar, stop: () => clamd.stop() };
    },
  },
  {
    type: 'metadefender',
    start: async () => {
      const core = await startEmulator({ scanDurationMs: 20 });
      // The emulator's first default engine reports EICAR as Win.Test.EICAR_HDB-1 (emulators/metadefender/config.ts).
      return {
        yaml: `{ type: metadefender, endpoints: ["${core.url}"], poll_initial_ms: 10, poll_max_ms: 50, timeout_ms: 10000 }`,
        eicarThreat: 'Win.Test.EICAR_HDB-1',
        stop: () => core.close(),
      };
    },
  },
  {
    // The upstream is the real thing: Debian's c-icap with its virus_scan service on a private clamd.
    type: 'icap',
    start: async () => {
      if (!HAVE_CLAMD || !HAVE_C_ICAP_VIRUS_SCAN) throw new Error('c-icap virus_scan or clamd missing: scripts/test-all.sh installs c-icap, libc-icap-mod-virus-scan, clamav-daemon');
      const clamd = await startClamd();
      const cicap = await startCIcap({ clamdSocket: clamd.socketPath }).catch(async (err: unknown) => {
        await clamd.stop();
        throw err;
      });
      return {
        yaml: `{ type: icap, endpoints: ["${cicap.avscanUrl}"], timeout_ms: 20000 }`,
        // virus_scan passes on clamd's name, which X-Infection-Found carries through both hops.
        eicarThreat: SIG.eicar,
        stop: async () => {
          await cicap.stop();
          await clamd.stop();
        },
      };
    },
  },
];

let srv: ChildServer;
const started = new Map<string, StartedBackend>();
let clean: string;
let eicar: string;

beforeAll(async () => {
  await run(CLIENT, ['-V']).catch((err: unknown) => {
    throw new Error(`c-icap-client is required (apt-get install c-icap; scripts/test-all.sh does it): ${String(err)}`);
  });
  for (const row of BACKENDS) started.set(row.type, await row.start());
  const backends = BACKENDS.map((r) => `  engine-${r.type}: ${started.get(r.type)!.yaml}\n`).join('');
  // One service per engine, named after its type: icap://HOST/scan-<type>.
  const services = BACKENDS.map((r) => `  scan-${r.type}: { methods: [RESPMOD, REQMOD], backends: [engine-${r.type}], preview_bytes: 1024 }\n`).join('');
  srv = await startChildServer(`backends:\n${backends}services:\n${services}`);
  clean = join(srv.dir, 'clean.bin');
  const data = Buffer.alloc(30_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
  writeFileSync(clean, data);
  eicar = join(srv.dir, 'eicar.com');
  writeFileSync(eicar, EICAR);
});

afterAll(async () => {
  await srv?.stop();
  for (const b of started.values()) await b.stop();
});

async function client(args: string[]): Promise<string> {
  const { stdout, stderr } = await run(CLIENT, ['-i', '127.0.0.1', '-p', String(srv.port), ...args], { timeout: 20_000 });
  return stdout + stderr;
}

describe.each(BACKENDS.map((r) => r.type))('c-icap-client through a service with only the %s backend', (type) => {
  const service = `scan-${type}`;

  it('clean file → 204, scanned by that engine', async () => {
    const url = `http://origin.test/${type}/clean.bin`;
    const out = await client(['-s', service, '-resp', url, '-f', clean, '-v']);
    expect(out).toContain('ICAP/1.0 204 No Content');
    expect(out).toContain('X-ICAP-Bridge-Decision: allow; reason=clean');
    const record = await srv.recordFor(url);
    expect(record).toMatchObject({ verdict: 'clean', body_bytes: 30_000 });
    expect(record.scans).toEqual([expect.objectContaining({ backend: `engine-${type}`, outcome: 'clean' })]);
  });

  it('clean file with -no204 → 200 echo, byte-identical', async () => {
    const output = join(srv.dir, `${type}-echo.out`);
    const out = await client(['-s', service, '-f', clean, '-no204', '-o', output, '-v']);
    expect(out).toContain('ICAP/1.0 200 OK');
    expect(readFileSync(output).equals(readFileSync(clean))).toBe(true);
  });

  it('EICAR (RESPMOD) → blocked with this engine\'s threat name in X-Infection-Found', async () => {
    const url = `http://origin.test/${type}/eicar.com`;
    const output = join(srv.dir, `${type}-eicar.out`);
    const out = await client(['-s', service, '-resp', url, '-f', eicar, '-o', output, '-v']);
    const threat = started.get(type)!.eicarThreat;
    expect(out).toContain('ICAP/1.0 200 OK');
    expect(out).toContain(`X-Infection-Found: Type=0; Resolution=2; Threat=${threat};`);
    expect(out).toContain('HTTP/1.1 403 Forbidden');
    expect(readFileSync(output, 'utf8')).toContain(threat);
    const record = await srv.recordFor(url);
    expect(record).toMatchObject({ verdict: 'infected', http_status: 403 });
    expect(record.threats).toContain(threat);
  });

  it('EICAR upload (REQMOD POST) → blocked with this engine\'s threat name', async () => {
    const url = `http://origin.test/${type}/upload`;
    const out = await client(['-s', service, '-req', url, '-method', 'POST', '-f', eicar, '-v']);
    expect(out).toContain(`Threat=${started.get(type)!.eicarThreat};`);
    expect(out).toContain('HTTP/1.1 403 Forbidden');
  });
});
