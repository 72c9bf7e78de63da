/**
 * The Dockerfile, built and run with podman the way ../shared/tools/podman-here.md describes
 * (chroot isolation, host network, runc, no registry). The container gets a configuration
 * through a read-only bind mount over /etc/icap-bridge (listening on a free loopback port, so it
 * never collides with anything else on the machine), serves OPTIONS and an EICAR RESPMOD to
 * c-icap-client, passes its health check, and exits 0 within the grace period on
 * `podman stop` (SIGTERM).
 *
 * Where podman cannot build or run, this file FAILS and says why; it never skips. scripts/test-all.sh
 * installs podman, runc and debootstrap and builds the base image before the tests.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT } from '../helpers/child-server.js';
import { EICAR } from '../helpers/icap-messages.js';

const PODMAN = 'podman';
const RUNC = ['--runtime', '/usr/sbin/runc'];
const BASE_IMAGE = 'docker.io/library/node:20-bookworm-slim';
const BASE_IMAGE_SCRIPT = resolve(ROOT, '..', 'shared', 'tools', 'node-base-image.sh');
const IMAGE = 'localhost/icap-bridge:test';
const CLIENT = '/usr/bin/c-icap-client';
const BUILD_TIMEOUT_MS = 10 * 60_000;
/** The grace `podman stop -t` gives before SIGKILL; the server must be gone well before. */
const STOP_GRACE_S = 10;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function sh(file: string, args: string[], timeoutMs = 60_000): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr: stderr || (err && typeof err.code !== 'number' ? String(err) : ''), ms: Date.now() - started });
    });
  });
}

/** A step that must work; on failure the message says which command and what it printed. */
async function must(what: string, file: string, args: string[], timeoutMs?: number): Promise<Result> {
  const r = await sh(file, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(
      `CONTAINER TEST FAILED: ${what}: \`${file} ${args.join(' ')}\` exited ${r.code}\n` +
        `${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`,
    );
  }
  return r;
}

const name = `icap-bridge-test-${process.pid}`;
let port: number;
let dir: string;
let started = false;

beforeAll(async () => {
  const version = await sh(PODMAN, ['--version']);
  if (version.code !== 0) {
    throw new Error(
      'CONTAINER TEST FAILED: podman is not usable on this machine (apt-get install podman runc debootstrap; ' +
        `scripts/test-all.sh does it): ${version.stderr}`,
    );
  }
  if (!existsSync('/usr/sbin/runc')) throw new Error('CONTAINER TEST FAILED: /usr/sbin/runc is missing (apt-get install runc)');
  await must('checking the client', CLIENT, ['-V']).catch((err: unknown) => {
    throw new Error(`c-icap-client is required (apt-get install c-icap; scripts/test-all.sh does it): ${String(err)}`);
  });

  // The base image is a local stand-in for node:20-bookworm-slim (no registry here).
  if ((await sh(PODMAN, ['image', 'exists', BASE_IMAGE])).code !== 0) {
    if (!existsSync(BASE_IMAGE_SCRIPT)) {
      throw new Error(`CONTAINER TEST FAILED: ${BASE_IMAGE} is missing and ${BASE_IMAGE_SCRIPT} does not exist to build it`);
    }
    await must('building the base image', 'bash', [BASE_IMAGE_SCRIPT], BUILD_TIMEOUT_MS);
  }

  const build = await must(
    'building the image',
    PODMAN,
    ['build', '--format', 'docker', '--isolation=chroot', '--network=host', '--pull=never', '-t', IMAGE, ROOT],
    BUILD_TIMEOUT_MS,
  );
  const cached = (build.stdout.match(/Using cache/g) ?? []).length;
  console.log(`podman build: ${(build.ms / 1000).toFixed(1)} s (${cached} cached steps)`);

  // The mounted configuration: readable by the container's user (uid 1000), loopback only.
  port = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'icap-bridge-container-'));
  chmodSync(dir, 0o755);
  const config = join(dir, 'icap-bridge.yaml');
  writeFileSync(config, `server:\n  listen: [{ host: 127.0.0.1, port: ${port} }]\nlogging:\n  level: info\n`);
  chmodSync(config, 0o644);
  writeFileSync(join(dir, 'eicar.com'), EICAR);
  writeFileSync(join(dir, 'clean.txt'), 'just a harmless text file\n');

  await sh(PODMAN, [...RUNC, 'rm', '-f', name]); // a leftover from an interrupted run
  await must('starting the container', PODMAN, [
    ...RUNC,
    'run',
    '-d',
    '--name',
    name,
    '--network=host',
    '--ulimit',
    'nofile=4096:4096',
    '--ulimit',
    'nproc=4096:4096',
    '-v',
    `${dir}:/etc/icap-bridge:ro,Z`,
    // The image's HEALTHCHECK probes port 1344; this container listens elsewhere (podman-here.md:
    // health-check timers need systemd, so the check is run on demand below).
    '--health-cmd',
    `node dist/src/cli.js probe --timeout 4000 icap://127.0.0.1:${port}/respmod`,
    IMAGE,
  ]);
  started = true;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const logs = await sh(PODMAN, [...RUNC, 'logs', name]);
    if (logs.stdout.includes('"icap-bridge started"')) break;
    const state = await sh(PODMAN, [...RUNC, 'inspect', '--format', '{{.State.Status}}', name]);
    if (state.stdout.trim() !== 'running' || Date.now() > deadline) {
      throw new Error(`CONTAINER TEST FAILED: the server did not start (${state.stdout.trim()}):\n${logs.stdout}\n${logs.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}, BUILD_TIMEOUT_MS + 60_000);

afterAll(async () => {
  if (started) await sh(PODMAN, [...RUNC, 'rm', '-f', '-t', '0', name]);
});

async function client(args: string[]): Promise<string> {
  const r = await must('c-icap-client', CLIENT, ['-i', '127.0.0.1', '-p', String(port), ...args], 20_000);
  return r.stdout + r.stderr;
}

describe('container image (Dockerfile, podman)', () => {
  it('is built from the Dockerfile: non-root, ports, stop signal, OPTIONS health check', async () => {
    const r = await must('inspecting the image', PODMAN, ['image', 'inspect', IMAGE, '--format', '{{json .Config}}|{{json .HealthCheck}}']);
    const [configJson, healthJson] = r.stdout.trim().split('|');
    const config = JSON.parse(configJson!) as { User: string; ExposedPorts: Record<string, unknown>; StopSignal: string; Cmd: string[] };
    const health = JSON.parse(healthJson!) as { Test: string[] } | null;
    expect(config.User).toBe('node');
    expect(Object.keys(config.ExposedPorts).sort()).toEqual(['11344/tcp', '1344/tcp', '9090/tcp']);
    expect(config.StopSignal).toBe('SIGTERM');
    expect(config.Cmd).toEqual(['node', 'dist/src/cli.js', '--config', '/etc/icap-bridge/icap-bridge.yaml']);
    expect(health?.Test.slice(0, 4)).toEqual(['CMD', 'node', 'dist/src/cli.js', 'probe']);
    expect(health?.Test.at(-1)).toBe('icap://127.0.0.1:1344/respmod');
  });

  it('runs as uid 1000 with production dependencies only', async () => {
    expect((await must('id', PODMAN, [...RUNC, 'exec', name, 'id', '-u'])).stdout.trim()).toBe('1000');
    const modules = (await must('ls', PODMAN, [...RUNC, 'exec', name, 'ls', 'node_modules'])).stdout.split('\n');
    expect(modules).toContain('pino');
    for (const dev of ['typescript', 'vitest', 'tsx', 'fast-check']) expect(modules).not.toContain(dev);
    // The code is not writable by the server's own user.
    expect((await sh(PODMAN, [...RUNC, 'exec', name, 'touch', 'dist/src/cli.js'])).code).not.toBe(0);
  });

  it('reads the mounted configuration and answers OPTIONS (c-icap-client)', async () => {
    const out = await client(['-s', 'respmod']);
    expect(out).toContain('Methods: RESPMOD');
    expect(out).toMatch(/ISTag: "IB-[A-Za-z0-9_-]+"/);
    expect(out).toContain('Allow 204: Yes');
    const logs = await must('logs', PODMAN, [...RUNC, 'logs', name]);
    expect(logs.stdout).toContain('"config":"/etc/icap-bridge/icap-bridge.yaml"');
  });

  it('blocks an EICAR RESPMOD and passes a clean one (c-icap-client)', async () => {
    // c-icap-client reads the file on the host; the bytes go over ICAP into the container.
    const blocked = await client(['-s', 'respmod', '-f', join(dir, 'eicar.com'), '-resp', 'http://example.com/eicar.com', '-v']);
    expect(blocked).toContain('ICAP/1.0 200 OK');
    expect(blocked).toContain('X-Infection-Found: Type=0; Resolution=2; Threat=EICAR-Test-File;');
    expect(blocked).toContain('HTTP/1.1 403 Forbidden');
    const clean = await client(['-s', 'respmod', '-f', join(dir, 'clean.txt'), '-resp', 'http://example.com/clean.txt', '-v']);
    expect(clean).toContain('ICAP/1.0 204 No Content');
  });

  it('passes its health check (icap-bridge probe inside the container)', async () => {
    const r = await sh(PODMAN, [...RUNC, 'healthcheck', 'run', name]);
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    const probe = await must('probe', PODMAN, [...RUNC, 'exec', name, 'node', 'dist/src/cli.js', 'probe', `icap://127.0.0.1:${port}/respmod`]);
    expect(probe.stdout).toMatch(/^ICAP\/1\.0 200 OK\n/);
  });

  it(`stops on SIGTERM (podman stop -t ${STOP_GRACE_S}) well within the grace period, exit code 0`, async () => {
    const stop = await must('podman stop', PODMAN, [...RUNC, 'stop', '-t', String(STOP_GRACE_S), name], (STOP_GRACE_S + 20) * 1000);
    console.log(`podman stop: ${stop.ms} ms`);
    // Killed at the deadline would take ≥ STOP_GRACE_S and end with 137.
    expect(stop.ms).toBeLessThan(5000);
    const state = await must('inspect', PODMAN, [...RUNC, 'inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', name]);
    expect(state.stdout.trim()).toBe('exited 0');
    const logs = await must('logs', PODMAN, [...RUNC, 'logs', name]);
    expect(logs.stdout).toContain('"signal":"SIGTERM"');
    expect(logs.stdout).toContain('"icap-bridge stopped"');
  });

});
