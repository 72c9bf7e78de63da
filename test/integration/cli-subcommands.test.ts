/**
 * The operator subcommands as users run them (node dist/src/cli.js check | probe | scan), and the
 * systemd unit in config/examples/icap-bridge.service: systemd-analyze verify, then its
 * ExecStartPre / ExecStart / ExecReload lines run with the install paths substituted.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, startChildServer, type ChildServer } from '../helpers/child-server.js';
import { EICAR } from '../helpers/icap-messages.js';

const CLI = join(ROOT, 'dist/src/cli.js');
const UNIT = join(ROOT, 'config/examples/icap-bridge.service');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion (bounded by `timeoutMs`) and returns its exit code and output. */
function runCommand(file: string, args: string[], timeoutMs = 20_000): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const cli = (args: string[], timeoutMs?: number): Promise<Result> => runCommand(process.execPath, [CLI, ...args], timeoutMs);

let dir: string;
let srv: ChildServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icap-bridge-subcommands-'));
  srv = await startChildServer();
});
afterAll(async () => {
  await srv?.stop();
});

function writeConfig(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('--help', () => {
  it('lists the subcommands and keeps the server usage line', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: icap-bridge [--config FILE]');
    for (const sub of ['check', 'probe', 'scan']) expect(r.stdout).toContain(`icap-bridge ${sub}`);
  });

  it.each(['check', 'probe', 'scan'])('%s --help prints its own usage and exits 0', async (sub) => {
    const r = await cli([sub, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: icap-bridge ${sub}`);
  });

  it('an unknown word is refused with status 2, not taken for a subcommand', async () => {
    const r = await cli(['chek', '--config', '/dev/null']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage:');
  });
});

describe('icap-bridge check', () => {
  it('a valid file: "configuration OK: FILE", status 0, nothing started', async () => {
    const file = writeConfig('ok.yaml', 'server:\n  listen: [{ host: 127.0.0.1, port: 1 }]\n');
    const r = await cli(['check', '--config', file]);
    expect(r).toMatchObject({ code: 0, stdout: `configuration OK: ${file}\n`, stderr: '' });
  });

  it('an invalid file: every problem named by file, key path and rule, status 2', async () => {
    const file = writeConfig('bad.yaml', 'server:\n  max_connections: -5\nservices:\n  respmod:\n    preview_bytes: abc\n');
    const r = await cli(['check', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${file}: server.max_connections: must be an integer`);
    expect(r.stderr).toContain(`${file}: services.respmod.preview_bytes:`);
  });

  it('a missing file: status 2, naming it', async () => {
    const r = await cli(['check', '--config', join(dir, 'nope.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(join(dir, 'nope.yaml'));
  });

  it('a stray argument: status 2 with usage', async () => {
    const r = await cli(['check', 'extra']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: icap-bridge check');
  });
});

describe('icap-bridge probe', () => {
  it('a running server: status line, ISTag and Methods, status 0', async () => {
    const r = await cli(['probe', `icap://127.0.0.1:${srv.port}/respmod`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ICAP\/1\.0 200 OK\nISTag: "IB-[A-Za-z0-9_-]+"\nMethods: RESPMOD\n$/);
    // The same ISTag the server announced at start.
    const started = srv.logs().find((l) => l.msg === 'icap-bridge started') as { istags?: Record<string, string> } | undefined;
    if (started?.istags?.respmod !== undefined) expect(r.stdout).toContain(`ISTag: ${started.istags.respmod}`);
  });

  it('an alias path works like the service (case ignored)', async () => {
    const r = await cli(['probe', `icap://127.0.0.1:${srv.port}/omsscanresp-av`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Methods: RESPMOD');
  });

  it('another status (404 for an unknown service): printed, status 1', async () => {
    const r = await cli(['probe', `icap://127.0.0.1:${srv.port}/no-such-service`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ICAP\/1\.0 404 /);
  });

  it('a refused connection: status 1 and the reason', async () => {
    const port = await freePort();
    const r = await cli(['probe', `icap://127.0.0.1:${port}/respmod`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`cannot reach 127.0.0.1:${port}`);
    expect(r.stderr).toContain('ECONNREFUSED');
  });

  it('a server that accepts and never answers: status 1 after --timeout', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const r = await cli(['probe', '--timeout', '300', `icap://127.0.0.1:${port}/respmod`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('no answer from');
      expect(r.stderr).toContain('within 300 ms');
      expect(r.ms).toBeLessThan(5000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('something that is not ICAP: status 1', async () => {
    const sockets: Socket[] = [];
    const http: Server = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      s.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as { port: number }).port;
    try {
      const r = await cli(['probe', '--timeout', '5000', `icap://127.0.0.1:${port}/respmod`]);
      expect(r.stderr).toContain('not an ICAP answer');
      expect(r.code).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it.each([
    [['probe'], 'exactly one'],
    [['probe', 'http://127.0.0.1:1344/respmod'], 'only icap://'],
    [['probe', 'not a url'], 'not a URL'],
    [['probe', '--timeout', 'soon', 'icap://127.0.0.1/respmod'], '--timeout'],
  ])('usage error %j: status 2', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe('icap-bridge scan', () => {
  let files: { clean: string; eicar: string; bigClean: string; bigEicar: string; listed: string };
  let config: string;

  beforeAll(() => {
    const make = (name: string, data: Buffer): string => {
      const file = join(dir, name);
      writeFileSync(file, data);
      return file;
    };
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    const listedBytes = Buffer.from('a file whose hash is on the list\n');
    files = {
      clean: make('clean.txt', Buffer.from('just a harmless text file\n')),
      eicar: make('eicar.com', EICAR),
      bigClean: make('big-clean.bin', big),
      // Past spool.memory_bytes: scanned from the file itself, EICAR in its last bytes.
      bigEicar: make('big-eicar.bin', Buffer.concat([big, EICAR])),
      listed: make('listed.txt', listedBytes),
    };
    const hashList = join(dir, 'hashes.txt');
    writeFileSync(hashList, `${createHash('sha256').update(listedBytes).digest('hex')} Test.Listed-File\n`);
    config = writeConfig(
      'scan.yaml',
      `spool:\n  memory_bytes: 65536\nbackends:\n  builtin: { type: builtin, workers: 1, hash_lists: [${hashList}] }\n`,
    );
  });

  it('clean files: one "FILE: clean" line each, status 0', async () => {
    const r = await cli(['scan', '--config', config, files.clean, files.bigClean]);
    expect(r).toMatchObject({ code: 0, stdout: `${files.clean}: clean\n${files.bigClean}: clean\n` });
  });

  it('EICAR, in memory and from a file past the memory threshold, and a hash-list hit: status 1', async () => {
    const r = await cli(['scan', '--config', config, files.clean, files.eicar, files.bigEicar, files.listed]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      `${files.clean}: clean\n` +
        `${files.eicar}: infected EICAR-Test-File\n` +
        `${files.bigEicar}: infected EICAR-Test-File\n` +
        `${files.listed}: infected Test.Listed-File\n`,
    );
  });

  it('a file that cannot be read: "FILE: error ...", the others still scanned, status 1', async () => {
    const missing = join(dir, 'missing.bin');
    const r = await cli(['scan', '--config', config, missing, dir, files.clean]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${missing}: error cannot read the file: ENOENT`);
    expect(r.stdout).toContain(`${dir}: error cannot read the file: not a regular file`);
    expect(r.stdout).toContain(`${files.clean}: clean`);
  });

  it('a scanner error is an error line, whatever on_error says: status 1', async () => {
    // A 1 ms scan timeout cannot hash 8 MB (nor start a worker thread) in time.
    const huge = join(dir, 'huge.bin');
    writeFileSync(huge, Buffer.alloc(8 * 1024 * 1024, 7));
    const timeout = writeConfig(
      'timeout.yaml',
      'backends:\n  builtin: { type: builtin, workers: 1, timeout_ms: 1 }\nservices:\n  respmod: { on_error: allow }\n',
    );
    const r = await cli(['scan', '--config', timeout, huge]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^${huge}: error builtin:timeout \\(.*\\); on_error=allow\\n$`));
  });

  it('--service picks a service by name or alias; its backends apply', async () => {
    const twoServices = writeConfig(
      'services.yaml',
      'backends:\n  noeicar: { type: builtin, workers: 1, eicar: false }\n  builtin: { type: builtin, workers: 1 }\n' +
        'services:\n  lenient: { backends: [noeicar] }\n  respmod: { aliases: [OMSScanResp-AV] }\n',
    );
    const first = await cli(['scan', '--config', twoServices, files.eicar]);
    expect(first).toMatchObject({ code: 0, stdout: `${files.eicar}: clean\n` }); // the first service
    const byAlias = await cli(['scan', '--config', twoServices, '--service', 'omsscanresp-av', files.eicar]);
    expect(byAlias).toMatchObject({ code: 1, stdout: `${files.eicar}: infected EICAR-Test-File\n` });
  });

  it.each([
    [['scan'], 'no FILE'],
    [['scan', '--service', 'nope', '--config', '@CONFIG@', 'x'], 'no service "nope"'],
    [['scan', '--bogus', 'x'], 'Unknown option'],
  ])('usage error %j: status 2', async (args, message) => {
    const r = await cli(args.map((a) => (a === '@CONFIG@' ? config : a)));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('an invalid config: status 2 naming the key', async () => {
    const bad = writeConfig('scan-bad.yaml', 'spool:\n  memory_bytes: lots\n');
    const r = await cli(['scan', '--config', bad, files.clean]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}: spool.memory_bytes:`);
  });

  it('a hash list that does not parse: status 2, naming file and line', async () => {
    const list = join(dir, 'broken-hashes.txt');
    writeFileSync(list, 'not a hash\n');
    const bad = writeConfig('scan-badlist.yaml', `backends:\n  builtin: { type: builtin, hash_lists: [${list}] }\n`);
    const r = await cli(['scan', '--config', bad, files.clean]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${list}:1`);
  });
});

// ---------------------------------------------------------------------------------------------
// config/examples/icap-bridge.service

/** [Section] → key → values (a key may repeat, as ExecStartPre may). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq <= 0) throw new Error(`unit file: unexpected line ${JSON.stringify(line)}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

describe('config/examples/icap-bridge.service', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'));
  const service = unit.get('Service')!;
  const one = (key: string): string | undefined => service.get(key)?.at(-1);
  const INSTALL_DIR = '/opt/icap-bridge';
  const CONFIG = '/etc/icap-bridge/icap-bridge.yaml';

  it('declares what operators rely on', () => {
    expect(one('Type')).toBe('simple');
    expect(one('Restart')).toBe('on-failure');
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('User')).toBeDefined();
    expect(one('User')).not.toMatch(/^(root|0)$/);
    expect(one('ExecStart')).toBe(`/usr/bin/node ${INSTALL_DIR}/dist/src/cli.js --config ${CONFIG}`);
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ReadWritePaths')).toBe('/var/spool/icap-bridge');
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  /** The unit as it would be installed on this machine: this node, this checkout, a test config. */
  function localise(text: string, configPath: string): string {
    return text
      .replaceAll('/usr/bin/node', process.execPath)
      .replaceAll(INSTALL_DIR, ROOT)
      .replaceAll(CONFIG, configPath);
  }

  // systemd's own parser: unknown keys, bad values, missing executables. The package is part of
  // Debian's standard install; where it is missing the test says so instead of passing quietly.
  const analyze = existsSync('/usr/bin/systemd-analyze');
  it.skipIf(!analyze)('passes systemd-analyze verify (no warnings) with the paths of this machine', async () => {
    const unitDir = mkdtempSync(join(tmpdir(), 'icap-bridge-unit-'));
    const copy = join(unitDir, 'icap-bridge.service');
    writeFileSync(copy, localise(readFileSync(UNIT, 'utf8'), join(unitDir, 'icap-bridge.yaml')));
    const r = await runCommand('/usr/bin/systemd-analyze', ['verify', '--man=no', copy]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
  if (!analyze) console.warn('icap-bridge.service: systemd-analyze is not installed; verify step NOT run');

  it('its ExecStartPre, ExecStart, ExecReload and KillSignal lines work as written', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'icap-bridge-unit-run-'));
    const spool = join(runDir, 'spool');
    mkdirSync(spool);
    const port = await freePort();
    const configPath = join(runDir, 'icap-bridge.yaml');
    writeFileSync(configPath, `server:\n  listen: [{ host: 127.0.0.1, port: ${port} }]\nspool:\n  directory: ${spool}\n`);
    const command = (key: string): string[] => localise(one(key)!, configPath).split(/\s+/);

    const [preFile, ...preArgs] = command('ExecStartPre');
    const pre = await runCommand(preFile!, preArgs);
    expect(pre).toMatchObject({ code: 0, stdout: `configuration OK: ${configPath}\n` });

    const [file, ...args] = command('ExecStart');
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      for (const deadline = Date.now() + 15_000; !out.includes('"icap-bridge started"'); ) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`ExecStart did not start the server: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await cli(['probe', `icap://127.0.0.1:${port}/respmod`])).code).toBe(0);

      // ExecReload: SIGHUP reloads; the process stays up and keeps answering.
      const [killFile, ...killArgs] = one('ExecReload')!.replace('$MAINPID', String(child.pid)).split(/\s+/);
      expect((await runCommand(killFile!, killArgs)).code).toBe(0);
      await new Promise((r) => setTimeout(r, 500));
      expect(child.exitCode).toBeNull();
      expect((await cli(['probe', `icap://127.0.0.1:${port}/respmod`])).code).toBe(0);

      // KillSignal (systemctl stop): exit 0 well within TimeoutStopSec.
      const signal = (one('KillSignal') ?? 'SIGTERM') as NodeJS.Signals;
      const stopSec = Number.parseInt(one('TimeoutStopSec') ?? '90', 10);
      const stopped = Date.now();
      process.kill(child.pid!, signal);
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), stopSec * 1000))]);
      expect(code).toBe(0);
      expect(Date.now() - stopped).toBeLessThan(stopSec * 1000);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
