/**
 * Squid talks to icap-bridge over TLS (ICAPS): a real Squid 5.7 (test/helpers/squid.ts) whose
 * only ICAP services are the commented ICAPS lines of config/examples/squid.conf, uncommented
 * (icap_service ... icaps://127.0.0.1:<tls port>/respmod bypass=0 tls-cafile=<test CA>, and
 * reqmod likewise), in front of the compiled icap-bridge with server.tls enabled (certificate for
 * 127.0.0.1 from a throwaway CA, test/helpers/tls-certs.ts) next to its plain listener. That
 * certificate's CN=127.0.0.1 matters: Squid 5.7 ignores IP subjectAltNames (see the example file).
 *
 * Needs a Squid built with OpenSSL. Debian's package `squid` is built with GnuTLS and refuses
 * tls-cafile ("WARNING: adaptation option 'tls-cafile' requires --with-openssl", then "FATAL:
 * malformed adaptation service configuration"); Debian's `squid-openssl` (same 5.7, same
 * /usr/sbin/squid, replaces `squid`) works and scripts/test-all.sh installs it. With the GnuTLS
 * build this file FAILS in beforeAll with that explanation (requireSquidIcaps); it never skips.
 *
 * Proof that the transactions came over TLS: Squid's configuration has no plain icap:// service
 * at all, icap-bridge logged 'listening' with tls:true for the port Squid uses, the access
 * records appear, and `ss` shows Squid's (persistent) ICAP connections going to the TLS port
 * and none to the plain one. A second pair checks mutual TLS (server.tls.client_ca; Squid's
 * tls-cert= and tls-key=). Bounds: 10 s per request, the whole file < 60 s (asserted last);
 * measured here (2 cores) ≈ 8 s, mostly starting and stopping the two Squids.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startChildServer, type ChildServer } from '../helpers/child-server.js';
import { EICAR } from '../helpers/icap-messages.js';
import { expectedSha256, fileBytes, ORIGIN_FILES } from '../helpers/origin-server.js';
import { exampleIcapLines, proxyRequest, proxyUser, requireSquidIcaps, squidParse, startSquid, waitForAccess, type Squid } from '../helpers/squid.js';
import { expectIntactDownload, startSquidStack, type SquidStack } from '../helpers/squid-stack.js';
import { makeTestCerts, type TestCerts } from '../helpers/tls-certs.js';

let certs: TestCerts;
let stack: SquidStack;
let tlsPort: number;
const started = Date.now();

/** Established TCP connections to 127.0.0.1:`port` owned by process `pid`, from `ss`. */
function connectionsTo(port: number, pid: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], { timeout: 5_000 }, (err, stdout) => {
      if (err) return reject(err);
      resolve(stdout.split('\n').filter((l) => l.includes(`pid=${pid},`)));
    });
  });
}

/** icap-bridge's server.tls section (inside `server:`) for a listener on `port`. */
const tlsYaml = (port: number, extra = ''): string =>
  `  tls:\n    enabled: true\n    listen: [{ host: 127.0.0.1, port: ${port} }]\n    cert: ${certs.serverCert}\n    key: ${certs.serverKey}\n${extra}`;

beforeAll(async () => {
  // Fails (never skips) with what is missing when this Squid cannot do icaps:// with tls-cafile.
  await requireSquidIcaps();
  certs = makeTestCerts();
  // Squid drops to the proxy user when started as root; the CA certificate is public.
  chmodSync(certs.dir, 0o755);
  chmodSync(certs.caCert, 0o644);
  tlsPort = await freePort();
  stack = await startSquidStack({
    serverYaml: tlsYaml(tlsPort),
    squid: { icaps: { port: tlsPort, cafile: certs.caCert } },
    urlTag: 'icaps',
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  if (certs !== undefined) rmSync(certs.dir, { recursive: true, force: true });
  console.log(`squid-icaps.test.ts: ${Date.now() - started} ms in all`);
}, 60_000);

describe('config/examples/squid.conf, ICAPS lines', () => {
  it('parse cleanly with squid -k parse (uncommented, in place of the plain lines)', async () => {
    const file = join(stack.squid.dir, 'example-icaps.conf');
    writeFileSync(file, exampleIcapLines(1344, false, { port: 11344, cafile: certs.caCert }));
    const r = await squidParse(file);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(/ERROR|WARNING|FATAL|unrecognized|Bungled|requires --with/i);
    expect(r.output).toContain(
      `Processing: icap_service av_resp respmod_precache icaps://127.0.0.1:11344/respmod bypass=0 tls-cafile=${certs.caCert}`,
    );
    expect(r.output).toContain(
      `Processing: icap_service av_req reqmod_precache icaps://127.0.0.1:11344/reqmod bypass=0 tls-cafile=${certs.caCert}`,
    );
  });

  it('are what the running Squid uses: icaps:// to the TLS port only, no plain icap:// service', () => {
    expect(stack.squid.conf).toMatch(
      new RegExp(`^icap_service av_resp respmod_precache icaps://127\\.0\\.0\\.1:${tlsPort}/respmod bypass=0 tls-cafile=${certs.caCert}$`, 'm'),
    );
    expect(stack.squid.conf).toMatch(
      new RegExp(`^icap_service av_req reqmod_precache icaps://127\\.0\\.0\\.1:${tlsPort}/reqmod bypass=0 tls-cafile=${certs.caCert}$`, 'm'),
    );
    expect(stack.squid.conf.split('\n').filter((l) => /^icap_service\b/.test(l))).toHaveLength(2);
    expect(stack.squid.conf).not.toMatch(/^icap_service\s.*\sicap:\/\//m);
  });

  it('icap-bridge listens on both: plain (tls:false) and the TLS port Squid uses (tls:true)', () => {
    const listening = stack.bridge.logs().filter((l) => l.msg === 'listening');
    expect(listening).toContainEqual(expect.objectContaining({ port: tlsPort, tls: true }));
    expect(listening).toContainEqual(expect.objectContaining({ port: stack.bridge.port, tls: false }));
  });
});

describe('through Squid over ICAPS', () => {
  it('a clean 1 MiB download arrives byte-identical (REQMOD and RESPMOD over TLS)', async () => {
    const path = '/clean-1m.bin';
    const url = stack.urlFor(path);
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 10_000 });
    expectIntactDownload(r, path);
    expect(r.ms).toBeLessThan(10_000);
    expect(await waitForAccess(stack.records, 'REQMOD', url)).toMatchObject({
      verdict: 'not-scanned',
      icap_status: 204,
      x_client_username: 'alice',
    });
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec).toMatchObject({ verdict: 'clean', icap_status: 200, body_bytes: ORIGIN_FILES[path]!.size });
    console.log(`${path} over icaps: ${r.ms} ms, committed=${JSON.stringify(rec.committed ?? null)}`);
  });

  it('the EICAR download gets the 403 block page', async () => {
    const url = stack.urlFor('/eicar.com');
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: 10_000 });
    expect(r.status).toBe(403);
    expect(r.complete).toBe(true);
    expect(r.text).toContain('Blocked by icap-bridge');
    expect(r.text).toContain('EICAR-Test-File');
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec).toMatchObject({ verdict: 'infected', reason: 'infected', http_status: 403, threats: ['EICAR-Test-File'] });
  });

  it('a clean 200 KiB POST reaches the origin byte-identical; an EICAR POST gets 403 and never does', async () => {
    const body = fileBytes('/clean-200k.bin');
    const url = stack.urlFor('/upload/clean');
    const r = await proxyRequest(stack.squid.port, { method: 'POST', url, body, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ bytes: body.length, sha256: expectedSha256('/clean-200k.bin') });
    expect(await waitForAccess(stack.records, 'REQMOD', url)).toMatchObject({ verdict: 'clean', body_bytes: body.length });

    const bad = stack.urlFor('/upload/infected');
    const b = await proxyRequest(stack.squid.port, { method: 'POST', url: bad, body: EICAR, timeoutMs: 10_000 });
    expect(b.status).toBe(403);
    expect(b.text).toContain('Blocked by icap-bridge');
    expect(await waitForAccess(stack.records, 'REQMOD', bad)).toMatchObject({ verdict: 'infected', http_status: 403 });
    const target = new URL(bad).pathname + new URL(bad).search;
    expect(stack.origin.requests.filter((q) => q.url === target)).toEqual([]);
  });

  it('all of it went over TLS: Squid is connected to the TLS port only, no handshake failed', async () => {
    // Every request above produced access records, and Squid keeps its ICAP connections open
    // (icap_persistent_connections on): they must all be to the TLS listener.
    // 4 requests: REQMOD for each, RESPMOD for the three that reached the origin (not the
    // EICAR upload, which REQMOD blocked).
    const mine = stack.records().filter((r) => typeof r.url === 'string' && r.url.includes('?icaps='));
    expect(mine.filter((r) => r.method === 'REQMOD')).toHaveLength(4);
    expect(mine.filter((r) => r.method === 'RESPMOD')).toHaveLength(3);
    const toTls = await connectionsTo(tlsPort, stack.squid.pid);
    const toPlain = await connectionsTo(stack.bridge.port, stack.squid.pid);
    expect(toTls.length, `ss: Squid's connections to the TLS port ${tlsPort}`).toBeGreaterThanOrEqual(1);
    expect(toPlain, `ss: Squid's connections to the plain port ${stack.bridge.port}`).toEqual([]);
    expect(stack.bridge.logs().filter((l) => l.msg === 'TLS handshake failed')).toEqual([]);
    expect(stack.squid.cacheLog()).not.toMatch(/ERROR|FATAL|certificate verify|handshake/i);
    console.log(`${mine.length} access records; Squid -> TLS port: ${toTls.length} connection(s), -> plain port: 0`);
  });
});

describe('mutual TLS (server.tls.client_ca): Squid presents a client certificate', () => {
  let mtlsBridge: ChildServer;
  let mtlsSquid: Squid;
  beforeAll(async () => {
    // Squid reads tls-key= after dropping to the proxy user (FATAL "Failed to acquire SSL private
    // key ... Permission denied" otherwise).
    const user = proxyUser();
    if (user !== null) chownSync(certs.clientKey, user.uid, user.gid);
    const port = await freePort();
    mtlsBridge = await startChildServer('', tlsYaml(port, `    client_ca: ${certs.caCert}\n`));
    mtlsSquid = await startSquid({
      icapPort: mtlsBridge.port,
      icaps: { port, cafile: certs.caCert, serviceOptions: `tls-cert=${certs.clientCert} tls-key=${certs.clientKey}` },
    });
  }, 60_000);
  afterAll(async () => {
    await mtlsSquid?.stop();
    await mtlsBridge?.stop();
  }, 60_000);

  it('with tls-cert= and tls-key= on both icap_service lines: clean download and EICAR block page', async () => {
    expect(mtlsSquid.conf).toContain(`tls-cafile=${certs.caCert} tls-cert=${certs.clientCert} tls-key=${certs.clientKey}\n`);
    const clean = stack.urlFor('/clean-1m.bin');
    const r = await proxyRequest(mtlsSquid.port, { url: clean, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    expect(r.complete).toBe(true);
    expect(r.sha256).toBe(expectedSha256('/clean-1m.bin'));
    const infected = stack.urlFor('/eicar.com');
    const b = await proxyRequest(mtlsSquid.port, { url: infected, timeoutMs: 10_000 });
    expect(b.status).toBe(403);
    expect(b.text).toContain('Blocked by icap-bridge');
    const mine = (): Record<string, unknown>[] => mtlsBridge.accessRecords();
    expect(await waitForAccess(mine, 'RESPMOD', clean)).toMatchObject({ verdict: 'clean' });
    expect(await waitForAccess(mine, 'RESPMOD', infected)).toMatchObject({ verdict: 'infected', http_status: 403 });
    expect(mtlsBridge.logs().filter((l) => l.msg === 'TLS handshake failed')).toEqual([]);
    expect(Date.now() - started, 'the whole file so far, ms').toBeLessThan(60_000);
  });
});
