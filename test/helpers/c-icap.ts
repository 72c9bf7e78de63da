/**
 * A private c-icap (Debian's /usr/bin/c-icap) with the virus_scan service for tests: a temp
 * directory with its own c-icap.conf, pid file, control socket, temp files and logs; a loopback
 * port; clamd reached through clamd_mod over a private clamd's UNIX socket (test/helpers/clamd.ts).
 *
 * clamd_mod over a UNIX socket passes each file as a descriptor (zFILDES), so clamd never needs to
 * read c-icap's temp directory; over TCP it would send `zSCAN <path>` instead.
 *
 * Runs `c-icap -N -f conf` in the foreground (-N: no daemon; c-icap still forks its worker
 * children), waits until OPTIONS is answered, and stops the main process by its PID, then any
 * worker children (found by parent PID before the kill) that outlive it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './child-server.js';
import { requestReply } from './socket-reply.js';
import { waitFor } from './wait.js';
import { childPids } from '../../tools/processes.js';

export const C_ICAP_BIN = '/usr/bin/c-icap';

/** The multiarch directory holding virus_scan.so and clamd_mod.so, or null when not installed. */
export function findModulesDir(): string | null {
  const candidates: string[] = [];
  if (existsSync('/usr/lib')) {
    for (const entry of readdirSync('/usr/lib')) candidates.push(join('/usr/lib', entry, 'c_icap'));
  }
  candidates.push('/usr/lib/c_icap', '/usr/local/lib/c_icap');
  return candidates.find((d) => existsSync(join(d, 'virus_scan.so')) && existsSync(join(d, 'clamd_mod.so'))) ?? null;
}

/** Tests skip where c-icap or libc-icap-mod-virus-scan is missing. */
export const HAVE_C_ICAP_VIRUS_SCAN = existsSync(C_ICAP_BIN) && findModulesDir() !== null;

export interface CIcapOptions {
  /** clamd's UNIX socket (RunningClamd.socketPath). */
  readonly clamdSocket: string;
}

export interface RunningCIcap {
  readonly dir: string;
  readonly port: number;
  /** `icap://127.0.0.1:PORT/avscan`: virus_scan with allow204=on, sizelimit=off, mode=simple. */
  readonly avscanUrl: string;
  /** `icap://127.0.0.1:PORT/virus_scan`: the service under its own name. */
  readonly virusScanUrl: string;
  pid(): number;
  serverLog(): string;
  /** SIGKILLs the main process and its workers (a crash), without removing the directory. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * c-icap 0.5.10 makes its process locks as /tmp/icap_lock_<name>.XXXXXX whatever TmpDir or TMPDIR
 * say, and a killed c-icap leaves them there.
 */
const LOCK_DIR = '/tmp';

function lockFiles(): Set<string> {
  return new Set(readdirSync(LOCK_DIR).filter((f) => f.startsWith('icap_lock_')));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One OPTIONS exchange; resolves the status line, or null (bounded by `timeoutMs`). */
export function optionsStatus(port: number, service: string, timeoutMs = 1000): Promise<string | null> {
  const request = `OPTIONS icap://127.0.0.1:${port}/${service} ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n`;
  return requestReply({ host: '127.0.0.1', port }, request, {
    timeoutMs,
    complete: (text) => (text.includes('\r\n\r\n') ? text.slice(0, text.indexOf('\r\n')) : undefined),
  });
}

/** Running (a zombie waiting for PID 1 to reap it counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export async function startCIcap(options: CIcapOptions): Promise<RunningCIcap> {
  const modulesDir = findModulesDir();
  if (modulesDir === null) throw new Error('c-icap modules (virus_scan.so, clamd_mod.so) not found');
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-c-icap-'));
  mkdirSync(join(dir, 'tmp'));
  const port = await freePort();
  const magic = ['/etc/c-icap/c-icap.magic', '/usr/share/c_icap/c-icap.magic'].find((f) => existsSync(f));
  const conf = [
    `PidFile ${join(dir, 'c-icap.pid')}`,
    `CommandsSocket ${join(dir, 'c-icap.ctl')}`,
    `TmpDir ${join(dir, 'tmp')}`,
    `ServerLog ${join(dir, 'server.log')}`,
    `AccessLog ${join(dir, 'access.log')}`,
    `Port 127.0.0.1:${port}`,
    'Timeout 60',
    'MaxKeepAliveRequests 0',
    'KeepAliveTimeout 60',
    // Small: one child with a few threads is plenty for tests on a 2-core machine.
    'StartServers 1',
    'MaxServers 1',
    'ThreadsPerChild 8',
    'MinSpareThreads 2',
    'MaxSpareThreads 8',
    'MaxRequestsPerChild 0',
    'ServerName icap-bridge-test-c-icap',
    'DebugLevel 1',
    `ModulesDir ${modulesDir}`,
    `ServicesDir ${modulesDir}`,
    'TemplateDir /usr/share/c_icap/templates/',
    'TemplateDefaultLanguage en',
    ...(magic !== undefined ? [`LoadMagicFile ${magic}`] : []),
    'Module common clamd_mod.so',
    `clamd_mod.ClamdSocket ${options.clamdSocket}`,
    'Service antivirus_module virus_scan.so',
    'ServiceAlias avscan virus_scan?allow204=on&sizelimit=off&mode=simple',
    'virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE',
    // No partial delivery before the verdict: a test body must be judged whole.
    'virus_scan.SendPercentData 0',
    'virus_scan.MaxObjectSize 5M',
    'virus_scan.DefaultEngine clamd',
  ];
  const confPath = join(dir, 'c-icap.conf');
  writeFileSync(confPath, `${conf.join('\n')}\n`);

  const locksBefore = lockFiles();
  const proc: ChildProcess = spawn(C_ICAP_BIN, ['-N', '-f', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let gone = false;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => ((gone = true), resolve())));
  const mainPid = proc.pid!;
  const serverLog = (): string => {
    const path = join(dir, 'server.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  };

  async function killAll(signal: NodeJS.Signals): Promise<void> {
    const children = childPids(mainPid);
    if (!gone) proc.kill(signal);
    // A crash takes the workers with it (they hold the listening socket and would go on serving).
    if (signal === 'SIGKILL') for (const child of children) if (alive(child)) process.kill(child, 'SIGKILL');
    const timeout = sleep(5_000).then(() => 'timeout' as const);
    if (!gone && (await Promise.race([exited, timeout])) === 'timeout') {
      proc.kill('SIGKILL');
      await exited;
    }
    // c-icap's main process normally takes its workers down; make sure, by their PIDs.
    for (const child of children) {
      for (let i = 0; i < 20 && alive(child); i++) await sleep(50);
      if (alive(child)) process.kill(child, 'SIGKILL');
    }
    // Its lock files (the ones that appeared since it started: integration tests run one at a time).
    for (const file of lockFiles()) if (!locksBefore.has(file)) rmSync(join(LOCK_DIR, file), { force: true });
  }

  // Bounded readiness poll: c-icap loads its modules and connects to clamd in well under a second.
  try {
    await waitFor(
      'c-icap to answer OPTIONS',
      async () => {
        if (gone) throw new Error('c-icap exited');
        const status = await optionsStatus(port, 'avscan', 500);
        return status !== null && / 200 /.test(status);
      },
      { timeoutMs: 20_000 },
    );
  } catch (err) {
    await killAll('SIGKILL');
    const log = serverLog().slice(-2000);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`c-icap did not answer OPTIONS (${(err as Error).message})\n${output}\n${log}`);
  }

  return {
    dir,
    port,
    avscanUrl: `icap://127.0.0.1:${port}/avscan`,
    virusScanUrl: `icap://127.0.0.1:${port}/virus_scan`,
    pid: () => mainPid,
    serverLog,
    kill: () => killAll('SIGKILL'),
    stop: async () => {
      await killAll('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
