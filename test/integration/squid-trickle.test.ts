/**
 * Trickle delivery (services.respmod.trickle, src/server/trickle.ts) with a real Squid (Debian's
 * 5.7) and 500 MB downloads streamed by the local origin: client → Squid → origin, Squid sending
 * each response to the compiled icap-bridge (trickle on with its defaults: from 10 MiB, 1 MiB held
 * back; commit on idle left on). Asserted:
 *   - a clean 500 MB file arrives byte-identical (sha256 computed while streaming, never held),
 *     its first byte and its first half long before the end: bytes flow while icap-bridge is
 *     still receiving the body, instead of after the whole body and its scan;
 *   - a 500 MB file with EICAR at its very end (the embedded engine finds it once the body is
 *     complete) ends as a truncated transfer: curl exits non-zero having received less than the
 *     file, never the held-back tail; logged blocked-by-truncation;
 *   - icap-bridge's peak RSS (VmHWM of the child process) stays under 256 MiB: forwarded bytes are
 *     read back from the spool's temp file, not kept in memory; no temp file is left.
 *
 * Squid and curl are required (scripts/test-all.sh installs them); without them this file fails.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedSha256, ORIGIN_FILES } from '../helpers/origin-server.js';
import { proxyRequest, SQUID_PASSWORD, SQUID_USER, waitForAccess } from '../helpers/squid.js';
import { expectIntactDownload, startSquidStack, type SquidStack } from '../helpers/squid-stack.js';

const MiB = 1024 * 1024;
const HOLD_BACK = MiB; // the default hold_back_bytes
const RSS_BOUND = 256 * MiB;
const TIMEOUT_MS = 180_000;

let stack: SquidStack;

beforeAll(async () => {
  stack = await startSquidStack({
    bridgeYaml: `backends:
  builtin:
    type: builtin
    workers: 2
services:
  respmod:
    methods: [RESPMOD]
    trickle: { enabled: true }
  reqmod:
    methods: [REQMOD]
`,
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

interface CurlResult {
  code: number | null;
  httpCode: number;
  sizeDownload: number;
  stderr: string;
}

/** curl through Squid, body to /dev/null; killed by its PID after `timeoutMs`. */
function curl(url: string, timeoutMs: number): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const args = ['-sS', '-o', '/dev/null', '-x', `http://127.0.0.1:${stack.squid.port}`, '-U', `${SQUID_USER}:${SQUID_PASSWORD}`];
    const child = spawn('curl', [...args, '-w', '%{http_code} %{size_download}', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const [http, size] = out.trim().split(' ');
      resolve({ code, httpCode: Number(http), sizeDownload: Number(size), stderr: err });
    });
  });
}

describe('trickle delivery through Squid, 500 MB', () => {
  it('clean: byte-identical; the first byte and the first half arrive long before the end', async () => {
    const path = '/clean-500m.bin';
    const size = ORIGIN_FILES[path]!.size;
    expectedSha256(path); // computed (and cached) before the clock starts
    const url = stack.urlFor(path);
    const r = await proxyRequest(stack.squid.port, { url, timeoutMs: TIMEOUT_MS });
    expectIntactDownload(r, path);
    const rec = await waitForAccess(stack.records, 'RESPMOD', url);
    expect(rec).toMatchObject({ verdict: 'clean', reason: 'clean', icap_status: 200, body_bytes: size });
    const committed = rec.committed as { kicks: number; released_bytes: number };
    expect(committed.released_bytes).toBeGreaterThan(0);
    expect(committed.released_bytes).toBeLessThanOrEqual(size - HOLD_BACK + 256);
    console.log(
      `${path}: ${r.ms} ms, first body byte ${r.firstBodyByteMs} ms, half ${r.halfBodyMs} ms, ` +
        `committed=${JSON.stringify(committed)}, scan ${JSON.stringify(rec.scans)}`,
    );
    // Without trickling the body would only start after icap-bridge had it all and scanned it.
    expect(r.firstBodyByteMs!).toBeLessThan(r.ms * 0.1);
    expect(r.halfBodyMs!).toBeLessThan(r.ms * 0.8);
  }, TIMEOUT_MS + 30_000);

  it('EICAR at the very end: a truncated transfer (curl fails, less than the file), logged blocked-by-truncation', async () => {
    const path = '/eicar-500m.bin';
    const size = ORIGIN_FILES[path]!.size;
    const url = stack.urlFor(path);
    const c = await curl(url, TIMEOUT_MS);
    console.log(`${path}: curl exit ${c.code}, HTTP ${c.httpCode}, ${c.sizeDownload} of ${size} bytes, ${c.stderr.trim()}`);
    expect(c.httpCode).toBe(200); // the head went out before the verdict
    expect(c.code).not.toBe(0);
    expect(c.code).not.toBeNull(); // exited by itself, not killed at the timeout
    expect(c.sizeDownload).toBeLessThan(size);
    expect(c.sizeDownload).toBeLessThanOrEqual(size - HOLD_BACK + 256); // never the held-back tail
    const rec = await waitForAccess(stack.records, 'RESPMOD', url, 10_000);
    expect(rec).toMatchObject({ verdict: 'infected', reason: 'blocked-by-truncation', threats: ['EICAR-Test-File'], body_bytes: size });
  }, TIMEOUT_MS + 30_000);

  it('icap-bridge stayed under 256 MiB peak RSS and left no temp file', async () => {
    const peak = stack.bridge.peakRss();
    console.log(`icap-bridge peak RSS ${(peak / MiB).toFixed(1)} MiB`);
    expect(peak).toBeLessThan(RSS_BOUND);
    await new Promise((r) => setTimeout(r, 200));
    expect(readdirSync(stack.bridge.spoolDir)).toEqual([]);
  });
});
