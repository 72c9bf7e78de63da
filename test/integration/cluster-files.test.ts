/**
 * server.processes: 2 on the real CLI, with a configuration naming every kind of file a worker
 * reads: a block page, a builtin hash list, an ICAP backend's CA, and the TLS listener's
 * certificate, key and client CA. A replacement worker (one worker SIGKILLed) reads them as the
 * primary accepted them (src/cluster/file-snapshots.ts), not as they are on disk now: edited
 * after the start, or removed after a reload, it still serves the same ISTag, block page, hash
 * verdicts and certificate as its sibling. The primary keeps only the copies a worker may still
 * read, and none after SIGTERM.
 *
 * The tests run in order and share one server.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startChildServer, type ChildServer } from '../helpers/child-server.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest } from '../helpers/icap-messages.js';
import { parseResponse } from '../helpers/icap-response.js';
import { makeTestCerts, type TestCerts } from '../helpers/tls-certs.js';
import { waitFor as waitUntil } from '../helpers/wait.js';
import { isAlive } from '../../tools/processes.js';

const BODY_A = 'a body the first hash list names';
const BODY_B = 'a body the second hash list names';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

let srv: ChildServer;
let tlsPort: number;
let startCerts: TestCerts;
let rotatedCerts: TestCerts;
let filesDir: string;
const seenPids = new Set<number>();

/** The files the configuration names, by role. */
const file = (name: string): string => join(filesDir, name);
const BLOCK_PAGE = 'block.html';
const HASHES = 'deny.sha256';
const UPSTREAM_CA = 'upstream-ca.pem';
const CERT = 'server.crt';
const KEY = 'server.key';
const CLIENT_CA = 'client-ca.pem';

const waitFor = <T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> => waitUntil(what, check, { timeoutMs, intervalMs: 25 });
const primaryLogs = (msg: string): Record<string, unknown>[] => srv.logs().filter((l) => l.role === 'primary' && l.msg === msg);

function writeFiles(page: string, listed: string, certs: TestCerts): void {
  writeFileSync(file(BLOCK_PAGE), `<html><body>${page}: {{threat}}</body></html>\n`);
  writeFileSync(file(HASHES), `# deny\n${sha256(listed)} Test.Listed\n`);
  copyFileSync(certs.caCert, file(UPSTREAM_CA));
  copyFileSync(certs.serverCert, file(CERT));
  copyFileSync(certs.serverKey, file(KEY));
  copyFileSync(certs.caCert, file(CLIENT_CA));
}

function workerPidsNow(): number[] {
  const started = primaryLogs('icap-bridge started')[0]!.worker_pids as number[];
  const exited = new Set(primaryLogs('worker exited').map((l) => l.worker_pid as number));
  const readied = primaryLogs('worker ready').map((l) => l.worker_pid as number);
  return [...new Set([...started, ...readied])].filter((p) => !exited.has(p));
}

/** SIGKILLs a worker and waits for its replacement to be ready; returns the replacement's pid. */
async function killAndReplace(): Promise<number> {
  const victim = workerPidsNow()[0]!;
  process.kill(victim, 'SIGKILL');
  const replacement = await waitFor(
    'a replacement worker ready',
    () => primaryLogs('worker ready').find((l) => !seenPids.has(l.worker_pid as number))?.worker_pid as number | undefined,
    20_000,
  );
  seenPids.add(replacement);
  await waitFor('the old worker gone from the logs', () => !workerPidsNow().includes(victim));
  return replacement;
}

/** pids of the access lines written after the first `from`, once there are `count` more. */
async function accessPids(from: number, count: number): Promise<number[]> {
  const lines = (): Record<string, unknown>[] => srv.logs().filter((l) => l.msg === 'access');
  await waitFor('access lines', () => (lines().length >= from + count ? true : undefined));
  return lines()
    .slice(from)
    .map((l) => l.pid as number);
}
const accessCount = (): number => srv.logs().filter((l) => l.msg === 'access').length;

interface Served {
  istags: Set<string>;
  /** The block page text of each answer to a RESPMOD of `body`, or 'clean'. */
  answers: Set<string>;
  pids: Set<number>;
}

/** On `n` new connections each: OPTIONS and a RESPMOD of `body`. */
async function serve(n: number, body: string): Promise<Served> {
  const from = accessCount();
  const served: Served = { istags: new Set(), answers: new Set(), pids: new Set() };
  for (let i = 0; i < n; i++) {
    const c = await TestClient.connect(srv.port);
    c.write(buildRequest({ method: 'OPTIONS' }).first);
    served.istags.add((await c.read()).header('ISTag')!);
    c.write(buildRequest({ body: [body], headers: [['Allow', '204']] }).first);
    const r = await c.read();
    served.answers.add(r.status === 204 ? 'clean' : /<body>(.*)<\/body>/.exec(r.body!.toString('utf8'))![1]!);
    c.close();
  }
  for (const pid of await accessPids(from, 2 * n)) served.pids.add(pid);
  return served;
}

/** On `n` new TLS connections: the SHA-256 fingerprint of each certificate the server showed. */
async function tlsCertificates(n: number): Promise<{ fingerprints: Set<string>; pids: Set<number> }> {
  const from = accessCount();
  const fingerprints = new Set<string>();
  for (let i = 0; i < n; i++) {
    const fingerprint = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect(
        { port: tlsPort, host: '127.0.0.1', rejectUnauthorized: false, cert: readFileSync(startCerts.clientCert), key: readFileSync(startCerts.clientKey) },
        () => {
          const shown = socket.getPeerCertificate().fingerprint256;
          socket.write(buildRequest({ method: 'OPTIONS' }).first);
          let got = Buffer.alloc(0);
          socket.on('data', (d: Buffer) => {
            got = Buffer.concat([got, d]);
            if (parseResponse(got) !== null) {
              socket.destroy();
              resolve(shown);
            }
          });
        },
      );
      socket.on('error', reject);
      socket.setTimeout(5000, () => socket.destroy(new Error('TLS exchange timed out')));
    });
    fingerprints.add(fingerprint);
  }
  return { fingerprints, pids: new Set(await accessPids(from, n)) };
}

const fingerprintOf = (certFile: string): string => {
  const der = Buffer.from(readFileSync(certFile, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
};

beforeAll(async () => {
  startCerts = makeTestCerts();
  rotatedCerts = makeTestCerts();
  filesDir = mkdtempSync(join(tmpdir(), 'icap-bridge-cluster-files-'));
  writeFiles('PAGE-A', BODY_A, startCerts);
  tlsPort = await freePort();
  const closedPort = await freePort();
  srv = await startChildServer(
    `backends:
  builtin: { type: builtin, hash_lists: [${file(HASHES)}] }
  upstream:
    type: icap
    endpoints: ['icap://127.0.0.1:${closedPort}/avscan']
    tls: { ca_file: ${file(UPSTREAM_CA)} }
services:
  respmod: { methods: [RESPMOD], backends: [builtin], block_page: ${file(BLOCK_PAGE)} }
  reqmod: { methods: [REQMOD], backends: [upstream] }
`,
    `  processes: 2
  timeouts: { shutdown_grace_ms: 3000 }
  tls:
    enabled: true
    listen: [{ host: 127.0.0.1, port: ${tlsPort} }]
    cert: ${file(CERT)}
    key: ${file(KEY)}
    client_ca: ${file(CLIENT_CA)}
`,
  );
  for (const pid of primaryLogs('icap-bridge started')[0]!.worker_pids as number[]) seenPids.add(pid);
}, 60_000);

afterAll(async () => {
  await srv?.stop('SIGKILL');
  for (const pid of seenPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const dir of [filesDir, startCerts?.dir, rotatedCerts?.dir]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('server.processes: 2, the files the configuration names', () => {
  let startIstag: string;

  it('a replacement reads them as they were at start, not as edited since', async () => {
    const before = await serve(6, BODY_A);
    expect(before.istags.size).toBe(1);
    expect(before.answers).toEqual(new Set(['PAGE-A: Test.Listed']));
    startIstag = [...before.istags][0]!;
    expect((await tlsCertificates(4)).fingerprints).toEqual(new Set([fingerprintOf(startCerts.serverCert)]));

    // Every file changed (the next test removes them); no reload.
    writeFiles('PAGE-B', BODY_B, rotatedCerts);
    const replacement = await killAndReplace();

    const after = await serve(8, BODY_A);
    expect(after.pids).toContain(replacement);
    expect(after.istags).toEqual(new Set([startIstag]));
    expect(after.answers).toEqual(new Set(['PAGE-A: Test.Listed']));
    expect((await serve(4, BODY_B)).answers).toEqual(new Set(['clean']));
    const tls = await tlsCertificates(6);
    expect(tls.pids).toContain(replacement);
    expect(tls.fingerprints).toEqual(new Set([fingerprintOf(startCerts.serverCert)]));
  });

  it('after a reload, a replacement reads them as the reload accepted them (TLS as started), though removed since', async () => {
    process.kill(srv.pid, 'SIGHUP');
    const reloaded = await waitFor('configuration reloaded', () => primaryLogs('configuration reloaded')[0]);
    expect((reloaded.workers as { ok: boolean }[]).map((w) => w.ok)).toEqual([true, true]);

    const accepted = await serve(6, BODY_B);
    expect(accepted.istags.size).toBe(1);
    const [reloadedIstag] = [...accepted.istags];
    expect(reloadedIstag).not.toBe(startIstag);
    expect(accepted.answers).toEqual(new Set(['PAGE-B: Test.Listed']));
    // A reload does not read the TLS files again: the workers keep the certificate they started with.
    expect((await tlsCertificates(4)).fingerprints).toEqual(new Set([fingerprintOf(startCerts.serverCert)]));

    for (const name of [BLOCK_PAGE, HASHES, UPSTREAM_CA, CERT, KEY, CLIENT_CA]) rmSync(file(name));
    const replacement = await killAndReplace();
    const after = await serve(8, BODY_B);
    expect(after.pids).toContain(replacement);
    expect(after.istags).toEqual(new Set([reloadedIstag]));
    expect(after.answers).toEqual(new Set(['PAGE-B: Test.Listed']));
    expect((await serve(4, BODY_A)).answers).toEqual(new Set(['clean']));
    const tls = await tlsCertificates(6);
    expect(tls.pids).toContain(replacement);
    expect(tls.fingerprints).toEqual(new Set([fingerprintOf(startCerts.serverCert)]));
  });

  it('keeps only the copies a worker may read; logs no key; leaves nothing after SIGTERM', async () => {
    const copies = join(srv.spoolDir, `icap-bridge-files-${srv.pid}`);
    // Generation 0 went once every worker had read generation 1 (the reload).
    expect(readdirSync(copies).sort()).toEqual(['1', 'start']);
    const key = readFileSync(startCerts.serverKey, 'utf8').split('\n')[1]!;
    expect(srv.stdoutLines().some((l) => l.includes(key) || l.includes('PRIVATE KEY'))).toBe(false);
    expect(await srv.stop('SIGTERM')).toBe(0);
    expect(readdirSync(srv.spoolDir)).toEqual([]);
  });
});
