/**
 * A private Squid (Debian's package `squid-openssl` or `squid`, 5.7 on bookworm) in front of an
 * icap-bridge, for end-to-end tests. Never the system service: each instance runs in the foreground
 * (`squid -N -f CONF`) with its own config, logs, pid file and core dump directory in a temp dir,
 * listens on a free loopback port, caches nothing (unless `memoryCache`), and is stopped by its PID.
 *
 * The ICAP lines are those of config/examples/squid.conf, verbatim, with only the icap-bridge port
 * replaced; `recipe2: true` also uncomments that file's four delay-pool lines (Recipe 2,
 * ../shared/specs/squid-interop.md), `icap206: true` its `icap_206_enable on` line. Squid authenticates clients with Basic auth (Debian's
 * basic_ncsa_auth and a generated htpasswd file), so it has a username to send to icap-bridge.
 *
 * `proxyRequest()` is the client side: node:http with an absolute URL and Proxy-Authorization,
 * hashing the body as it arrives (100 MB downloads are never held in memory).
 *
 * `icaps` (squid-icaps.test.ts) swaps the example's two plain icap_service lines for its commented
 * ICAPS block (icaps:// plus tls-cafile=). That needs a Squid built with OpenSSL: Debian's
 * `squid` is built with GnuTLS and refuses tls-cafile ("requires --with-openssl"); Debian's
 * `squid-openssl` (same version, same /usr/sbin/squid, conflicts with `squid`) accepts it, and
 * scripts/test-all.sh installs that one. Both run every other test here unchanged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ROOT } from './child-server.js';
import { waitFor } from './wait.js';

export const SQUID = '/usr/sbin/squid';
export const NCSA_HELPER = '/usr/lib/squid/basic_ncsa_auth';
export const EXAMPLE_CONF = join(ROOT, 'config/examples/squid.conf');
/** The user every test request authenticates as. */
export const SQUID_USER = 'alice';
export const SQUID_PASSWORD = 'wonderland';

/** Throws a clear error when Squid is not installed (scripts/test-all.sh installs it). */
export function requireSquid(): void {
  if (!existsSync(SQUID) || !existsSync(NCSA_HELPER)) {
    throw new Error(`Squid is required (apt-get install squid; scripts/test-all.sh does it): ${SQUID}, ${NCSA_HELPER}`);
  }
}

/** "5.7" from `squid -v`. */
export function squidVersion(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(SQUID, ['-v'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', () => resolve(/Version (\S+)/.exec(out)?.[1] ?? 'unknown'));
  });
}

/** `squid -v`: the version line and the configure options (e.g. '--with-openssl' or '--with-gnutls'). */
export function squidBuildInfo(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(SQUID, ['-v'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/**
 * Throws a clear error unless the installed Squid can talk ICAP over TLS with a private CA
 * (icap_service ... icaps://... tls-cafile=FILE), i.e. was built --with-openssl.
 */
export async function requireSquidIcaps(): Promise<void> {
  requireSquid();
  const info = await squidBuildInfo();
  if (!info.includes("'--with-openssl'")) {
    const tls = info.includes("'--with-gnutls'") ? 'GnuTLS (--with-gnutls)' : 'no OpenSSL (no --with-openssl)';
    throw new Error(
      `ICAPS needs a Squid built with OpenSSL, but ${SQUID} is built with ${tls}: it rejects ` +
        `"icap_service ... icaps://... tls-cafile=FILE" with "WARNING: adaptation option 'tls-cafile' requires ` +
        `--with-openssl" and "FATAL: malformed adaptation service configuration". Install Debian's drop-in ` +
        `replacement: apt-get install squid-openssl (it replaces the package squid; scripts/test-all.sh does it).`,
    );
  }
}

/** Runs `squid -k parse -f FILE`: exit code and everything it printed. */
export function squidParse(file: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SQUID, ['-k', 'parse', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The four Recipe 2 lines, commented out in the example file. */
const RECIPE2_LINE = /^#\s*(delay_pools|delay_class|delay_parameters|delay_access)\b/;
/** The example file's commented `icap_206_enable on` line (206 Partial Content). */
const ICAP_206_LINE = /^#\s*icap_206_enable on\s*$/;
const WHOLE_RANGES_LINE = /^#\s*range_offset_limit none\s*$/;
/** The example file's two active (plain ICAP) icap_service lines. */
const PLAIN_SERVICE_LINE = /^icap_service\s+\S+\s+\S+\s+icap:\/\//;
/** The example file's two commented ICAPS icap_service lines. */
const ICAPS_SERVICE_LINE = /^#\s*icap_service\s+\S+\s+\S+\s+icaps:\/\//;

/** ICAP over TLS: the example file's commented icaps:// lines, for an icap-bridge TLS listener. */
export interface IcapsOptions {
  /** icap-bridge's server.tls port (replaces the example's 11344). */
  port: number;
  /** PEM CA that signed icap-bridge's certificate (replaces the example's tls-cafile=...). */
  cafile: string;
  /** More icap_service options appended to both lines, e.g. "tls-cert=FILE tls-key=FILE". */
  serviceOptions?: string;
}

/**
 * The example file's lines for an icap-bridge on `icapPort`: only `127.0.0.1:1344` is replaced.
 * With `recipe2`, its four commented delay-pool lines are uncommented (exactly four must exist).
 * With `icaps`, its two plain icap_service lines are dropped and its two commented icaps:// lines
 * are uncommented instead, with port `icaps.port` and `tls-cafile=icaps.cafile` (exactly two
 * of each must exist); the service names and everything else stay as they are. With `icap206`,
 * its commented `icap_206_enable on` line is uncommented (exactly one must exist); with
 * `wholeRanges`, its commented `range_offset_limit none` line (exactly one must exist).
 */
export function exampleIcapLines(icapPort: number, recipe2 = false, icaps?: IcapsOptions, icap206 = false, wholeRanges = false): string {
  let lines = readFileSync(EXAMPLE_CONF, 'utf8').replaceAll('127.0.0.1:1344', `127.0.0.1:${icapPort}`).split('\n');
  if (recipe2) {
    const found = lines.filter((l) => RECIPE2_LINE.test(l)).length;
    if (found !== 4) throw new Error(`${EXAMPLE_CONF}: expected the 4 commented Recipe 2 lines, found ${found}`);
    lines = lines.map((l) => (RECIPE2_LINE.test(l) ? l.replace(/^#\s*/, '') : l));
  }
  if (icap206) {
    const found = lines.filter((l) => ICAP_206_LINE.test(l)).length;
    if (found !== 1) throw new Error(`${EXAMPLE_CONF}: expected 1 commented "icap_206_enable on" line, found ${found}`);
    lines = lines.map((l) => (ICAP_206_LINE.test(l) ? l.replace(/^#\s*/, '') : l));
  }
  if (wholeRanges) {
    const found = lines.filter((l) => WHOLE_RANGES_LINE.test(l)).length;
    if (found !== 1) throw new Error(`${EXAMPLE_CONF}: expected 1 commented "range_offset_limit none" line, found ${found}`);
    lines = lines.map((l) => (WHOLE_RANGES_LINE.test(l) ? l.replace(/^#\s*/, '') : l));
  }
  if (icaps !== undefined) {
    const plain = lines.filter((l) => PLAIN_SERVICE_LINE.test(l)).length;
    const tls = lines.filter((l) => ICAPS_SERVICE_LINE.test(l)).length;
    if (plain !== 2 || tls !== 2) {
      throw new Error(`${EXAMPLE_CONF}: expected 2 plain icap_service lines and 2 commented icaps:// ones, found ${plain} and ${tls}`);
    }
    lines = lines.flatMap((l) => {
      if (PLAIN_SERVICE_LINE.test(l)) return [`# (icaps: replaced by the icaps:// line below) ${l}`];
      if (!ICAPS_SERVICE_LINE.test(l)) return [l];
      let line = l.replace(/^#\s*/, '').replace(/icaps:\/\/127\.0\.0\.1:\d+\//, `icaps://127.0.0.1:${icaps.port}/`);
      if (!/ tls-cafile=\S+/.test(line)) throw new Error(`${EXAMPLE_CONF}: icaps:// line without tls-cafile=: ${l}`);
      line = line.replace(/ tls-cafile=\S+/, ` tls-cafile=${icaps.cafile}`);
      return [icaps.serviceOptions ? `${line} ${icaps.serviceOptions}` : line];
    });
  }
  return lines.join('\n');
}

/** Apache's MD5-based "$apr1$" password hash (what `openssl passwd -apr1` and htpasswd -m write). */
export function apr1(password: string, salt: string): string {
  const md5 = (...parts: (string | Buffer)[]): Buffer => {
    const h = createHash('md5');
    for (const p of parts) h.update(p);
    return h.digest();
  };
  const pw = Buffer.from(password);
  const magic = '$apr1$';
  const alt = md5(pw, salt, pw);
  const ctx = createHash('md5').update(pw).update(magic).update(salt);
  for (let left = pw.length; left > 0; left -= 16) ctx.update(alt.subarray(0, Math.min(left, 16)));
  for (let i = pw.length; i > 0; i >>= 1) ctx.update(i & 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  let final: Buffer = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    final = md5(i & 1 ? pw : final, i % 3 ? salt : '', i % 7 ? pw : '', i & 1 ? final : pw);
  }
  const itoa64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const to64 = (v: number, n: number): string => {
    let s = '';
    for (; n > 0; n--, v >>= 6) s += itoa64[v & 0x3f];
    return s;
  };
  const f = final;
  const encoded =
    to64((f[0]! << 16) | (f[6]! << 8) | f[12]!, 4) +
    to64((f[1]! << 16) | (f[7]! << 8) | f[13]!, 4) +
    to64((f[2]! << 16) | (f[8]! << 8) | f[14]!, 4) +
    to64((f[3]! << 16) | (f[9]! << 8) | f[15]!, 4) +
    to64((f[4]! << 16) | (f[10]! << 8) | f[5]!, 4) +
    to64(f[11]!, 2);
  return `${magic}${salt}$${encoded}`;
}

/**
 * uid/gid of `proxy` (Debian's default Squid user) when running as root, else null. Files Squid
 * opens after dropping privileges (e.g. an icap_service tls-key=) must be readable by it.
 */
export function proxyUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('proxy:'));
  if (line === undefined) throw new Error('running as root, but there is no "proxy" user for cache_effective_user');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export interface SquidOptions {
  /** Port of the icap-bridge the ICAP lines point at. */
  icapPort: number;
  /** Uncomment the example file's Recipe 2 (delay pool) lines. */
  recipe2?: boolean;
  /** Uncomment the example file's `icap_206_enable on` line (206 Partial Content). */
  icap206?: boolean;
  /** Uncomment the example file's `range_offset_limit none` line (whole files for range requests). */
  wholeRanges?: boolean;
  /** More squid.conf lines, appended last. */
  extraConf?: string;
  /**
   * Cache in memory (cache_mem 64 MB, objects up to 8 MB) instead of caching nothing, for tests of
   * what Squid keeps from an adapted answer (a cut download must never come back as a hit).
   */
  memoryCache?: boolean;
  /**
   * ICAP over TLS instead of plain ICAP: the example file's icaps:// lines replace its icap://
   * ones (see exampleIcapLines). Needs a Squid built with OpenSSL (requireSquidIcaps).
   */
  icaps?: IcapsOptions;
}

export interface Squid {
  port: number;
  pid: number;
  process: ChildProcess;
  dir: string;
  confPath: string;
  /** The whole generated squid.conf. */
  conf: string;
  /** Squid's cache.log and access.log (kept in memory once stopped). */
  cacheLog(): string;
  accessLog(): string;
  /**
   * SIGTERM, SIGKILL after `killAfterMs`; resolves with the exit code (null if killed) once the
   * process is gone, then removes the temp dir. Safe to call again.
   */
  stop(killAfterMs?: number): Promise<number | null>;
}

function tcpReady(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startSquid(options: SquidOptions): Promise<Squid> {
  requireSquid();
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-squid-'));
  const user = proxyUser();
  // Squid started as root drops to cache_effective_user, which must write the logs and pid file.
  if (user !== null) chownSync(dir, user.uid, user.gid);
  const port = await freePort();
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${SQUID_USER}:${apr1(SQUID_PASSWORD, randomBytes(6).toString('hex').slice(0, 8))}\n`, {
    mode: 0o644,
  });
  const conf = `# Written by test/helpers/squid.ts for one test run: private files, loopback only.
http_port 127.0.0.1:${port}
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log stdio:${dir}/access.log
cache_store_log none
netdb_filename none
coredump_dir ${dir}
${options.memoryCache ? 'cache allow all\ncache_mem 64 MB\nmaximum_object_size_in_memory 8 MB' : 'cache deny all\ncache_mem 8 MB'}
shutdown_lifetime 1 seconds
visible_hostname icap-bridge-test
pinger_enable off
${user !== null ? 'cache_effective_user proxy' : '# not root: Squid runs as the current user'}
auth_param basic program ${NCSA_HELPER} ${htpasswd}
auth_param basic children 2 startup=1 idle=1
auth_param basic realm icap-bridge-test
acl authenticated proxy_auth REQUIRED
http_access allow authenticated
http_access deny all

# ---- ${EXAMPLE_CONF}, icap-bridge port replaced${options.icaps ? ', icaps:// lines in place of icap://' : ''} ----
${exampleIcapLines(options.icapPort, options.recipe2 ?? false, options.icaps, options.icap206 ?? false, options.wholeRanges ?? false)}
# ---- test-specific ----
${options.extraConf ?? ''}
`;
  const confPath = join(dir, 'squid.conf');
  writeFileSync(confPath, conf, { mode: 0o644 });

  const child = spawn(SQUID, ['-N', '-f', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // After stop() the temp dir is gone; the logs are kept in memory.
  let finalLogs: { cache: string; access: string } | null = null;
  const readLog = (name: string): string => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8') : '');
  const cacheLog = (): string => finalLogs?.cache ?? readLog('cache.log');
  const accessLog = (): string => finalLogs?.access ?? readLog('access.log');

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`squid exited at start (${child.exitCode ?? child.signalCode}): ${out}\n${cacheLog()}`);
    }
    if (cacheLog().includes('Accepting HTTP Socket connections') && (await tcpReady(port))) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`squid did not start within 20 s: ${out}\n${cacheLog()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    port,
    pid: child.pid!,
    process: child,
    dir,
    confPath,
    conf,
    cacheLog,
    accessLog,
    async stop(killAfterMs = 8_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, killAfterMs);
      const code = await exited;
      clearTimeout(timer);
      finalLogs ??= { cache: readLog('cache.log'), access: readLog('access.log') };
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface ProxyResult {
  /** HTTP status, 0 when no response head arrived. */
  status: number;
  headers: IncomingHttpHeaders;
  /** Body bytes received. */
  bytes: number;
  sha256: string;
  /** The first 64 KiB of the body as text (block pages and Squid error pages). */
  text: string;
  /** Content-Length of the response, if any. */
  contentLength: number | null;
  /** The whole message arrived (node's `res.complete`): false for a truncated transfer. */
  complete: boolean;
  /** Socket or parser error, or "timeout". */
  error: string | null;
  /** Time to the end of the response (or the failure), in ms. */
  ms: number;
  /** Time to the first body byte, in ms; null when none arrived. */
  firstBodyByteMs: number | null;
  /** Time until half of Content-Length had arrived, in ms; null when it never did (or no Content-Length). */
  halfBodyMs: number | null;
}

export interface ProxyRequestOptions {
  method?: string;
  /** Absolute URL, sent as the request target. */
  url: string;
  body?: Buffer;
  /** Content-Type of `body` (default application/octet-stream). */
  contentType?: string;
  timeoutMs: number;
  /** Send Proxy-Authorization (default true). */
  auth?: boolean;
}

/** One request through the proxy on `proxyPort`, on a new connection. Never rejects. */
export function proxyRequest(proxyPort: number, options: ProxyRequestOptions): Promise<ProxyResult> {
  const started = performance.now();
  const headers: Record<string, string | number> = { Host: new URL(options.url).host };
  if (options.auth !== false) {
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(`${SQUID_USER}:${SQUID_PASSWORD}`).toString('base64')}`;
  }
  if (options.body !== undefined) {
    headers['Content-Type'] = options.contentType ?? 'application/octet-stream';
    headers['Content-Length'] = options.body.length;
  }
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    const textParts: Buffer[] = [];
    let textBytes = 0;
    const result: ProxyResult = {
      status: 0,
      headers: {},
      bytes: 0,
      sha256: '',
      text: '',
      contentLength: null,
      complete: false,
      error: null,
      ms: 0,
      firstBodyByteMs: null,
      halfBodyMs: null,
    };
    let done = false;
    const finish = (error: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      result.error ??= error;
      result.sha256 = hash.digest('hex');
      result.text = Buffer.concat(textParts).toString('utf8');
      result.ms = Math.round(performance.now() - started);
      resolve(result);
    };
    const req = request({
      host: '127.0.0.1',
      port: proxyPort,
      method: options.method ?? 'GET',
      path: options.url,
      headers,
      agent: false,
    });
    const timer = setTimeout(() => {
      result.error = 'timeout';
      req.destroy(new Error('timeout'));
      finish('timeout');
    }, options.timeoutMs);
    req.on('error', (err) => finish(err.message));
    req.on('response', (res) => {
      result.status = res.statusCode ?? 0;
      result.headers = res.headers;
      const cl = res.headers['content-length'];
      result.contentLength = cl === undefined ? null : Number(cl);
      res.on('data', (d: Buffer) => {
        const now = Math.round(performance.now() - started);
        result.firstBodyByteMs ??= now;
        result.bytes += d.length;
        if (result.contentLength !== null && result.halfBodyMs === null && result.bytes * 2 >= result.contentLength) result.halfBodyMs = now;
        hash.update(d);
        if (textBytes < 65_536) {
          textParts.push(d.subarray(0, 65_536 - textBytes));
          textBytes += Math.min(d.length, 65_536 - textBytes);
        }
      });
      res.on('error', (err) => {
        result.error ??= err.message;
      });
      res.on('close', () => {
        result.complete = res.complete;
        finish(null);
      });
    });
    req.end(options.body);
  });
}

/** The access record icap-bridge wrote for `method` and `url`, waiting up to `timeoutMs`. */
export function waitForAccess(
  records: () => Record<string, unknown>[],
  method: 'REQMOD' | 'RESPMOD',
  url: string,
  timeoutMs = 5_000,
): Promise<Record<string, unknown>> {
  return waitFor(`the ${method} access record for ${url}`, () => records().find((r) => r.method === method && r.url === url), {
    timeoutMs,
    intervalMs: 25,
  });
}
