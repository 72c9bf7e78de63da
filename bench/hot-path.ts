/**
 * The JavaScript a small request costs, without the kernel's share: the compiled server (dist/)
 * serves in-memory sockets in this process, so nothing goes through TCP and the CPU time measured
 * is the server's own code, Node's streams and V8 (GC included), plus the access log's write(2)s.
 *
 *   npm run build && node --import tsx bench/hot-path.ts [--scenario reqmod-null] [--connections 16]
 *       [--requests 300000] [--rounds 5] [--access-log-format squid|json] [--json]
 *
 * Why: on this 2-core VM a loopback run's CPU per request varies ±5–10 % from run to run (the
 * generator, the kernel and the host share the cores), so a change worth 3 % needs many
 * alternating runs. Here, back to back, the minimum of 5 rounds usually repeats within a few
 * percent (the host's noise still moves it): A/B a change by running this in two worktrees at
 * the same time, one per core, so a burst of noise hits both, and compare the minima pair by pair
 * (BENCHMARKS.md, Session 9, has the commands). The loopback figure stays the one that
 * counts (BENCHMARKS.md); what this leaves out (send/recv, epoll: ~9 µs per REQMOD in Session 8's
 * perf profile) is the same for every change to our code.
 *
 * Each connection is a Duplex standing in for a net.Socket: a request is pushed on its readable
 * side in a later turn than the answer before it (as a client's next request would arrive), and
 * the answer is taken from its writable side. Answers must be 204 (or 200 for OPTIONS); anything
 * else stops the run. The config is bench/icap-bridge.bench.yaml, as the loopback bench uses it:
 * access log on, to a file (a temp file here, removed at the end), in the Squid layout unless
 * --access-log-format json.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Socket } from 'node:net';
import { ACCESS_LOG_FORMATS, BENCH_SERVICE, isAccessLogFormat, renderBenchConfig, ROOT } from './lib/bridge-process.js';
import { buildScenario, isScenarioName } from './lib/scenarios.js';
import { median } from './lib/stats.js';

const SMALL_SCENARIOS = ['options', 'reqmod-null', 'respmod-4k'] as const;
type SmallScenario = (typeof SMALL_SCENARIOS)[number];
const HEAD_END = Buffer.from('\r\n\r\n');

/** A net.Socket as far as IcapConnection uses one, held in memory. */
class MemorySocket extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort: number;
  bytesRead = 0;
  #answer: Buffer[] = [];
  readonly #onAnswer: (answer: Buffer) => void;

  constructor(port: number, onAnswer: (answer: Buffer) => void) {
    super();
    this.remotePort = port;
    this.#onAnswer = onAnswer;
  }

  setNoDelay(): this {
    return this;
  }

  send(request: Buffer): void {
    this.bytesRead += request.length;
    this.push(request);
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#take(chunk);
    callback();
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    for (const { chunk } of chunks) this.#take(chunk);
    callback();
  }

  /** Small answers have no body: the head's blank line ends one. */
  #take(chunk: Buffer): void {
    this.#answer.push(chunk);
    if (chunk.length >= 4 && chunk.subarray(chunk.length - 4).equals(HEAD_END)) {
      const answer = Buffer.concat(this.#answer);
      this.#answer = [];
      this.#onAnswer(answer);
    }
  }
}

interface Round {
  requests: number;
  cpuUsPerRequest: number;
  wallUsPerRequest: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'reqmod-null' },
      connections: { type: 'string', default: '16' },
      requests: { type: 'string', default: '300000' },
      rounds: { type: 'string', default: '5' },
      'access-log-format': { type: 'string', default: 'squid' },
      json: { type: 'boolean', default: false },
    },
  });
  const scenario = values.scenario!;
  if (!isSmallScenario(scenario)) throw new Error(`--scenario must be one of ${SMALL_SCENARIOS.join(', ')}`);
  const accessLogFormat = values['access-log-format']!;
  if (!isAccessLogFormat(accessLogFormat)) throw new Error(`--access-log-format must be one of ${ACCESS_LOG_FORMATS.join(', ')}`);
  const connections = Number(values.connections);
  const perRound = Number(values.requests);
  const rounds = Number(values.rounds);
  for (const [name, n] of [['connections', connections], ['requests', perRound], ['rounds', rounds]] as const) {
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  }

  const dist = (path: string): string => pathToFileURL(join(ROOT, 'dist', path)).href;
  const { loadConfigFile } = (await import(dist('src/config/index.js'))) as typeof import('../src/config/index.js');
  const { createBackends } = (await import(dist('src/backends/create-backends.js'))) as typeof import('../src/backends/create-backends.js');
  const { createIcapServer } = (await import(dist('src/server/icap-server.js'))) as typeof import('../src/server/icap-server.js');
  const { createLogger } = (await import(dist('src/observability/logger.js'))) as typeof import('../src/observability/logger.js');
  const { batchedStdout } = (await import(dist('src/observability/log-destination.js'))) as typeof import('../src/observability/log-destination.js');

  const request = buildScenario(scenario, { host: '127.0.0.1', port: 1344, service: BENCH_SERVICE[scenario] }).full;
  const expected = scenario === 'options' ? 'ICAP/1.0 200' : 'ICAP/1.0 204';
  const results: Round[] = [];
  // Config, spool and access log live here; removed whatever happens from here on.
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-hot-path-'));
  try {
    const spool = join(dir, 'spool');
    mkdirSync(spool);
    const configPath = join(dir, 'icap-bridge.yaml');
    writeFileSync(
      configPath,
      renderBenchConfig(
        { port: 0, processes: 1, clamdEndpoint: join(dir, 'no-clamd.sock'), streamMaxBytes: 33_554_432, builtinWorkers: 0, clamdTransfer: 'path', accessLogFormat },
        spool,
      ),
    );
    const config = loadConfigFile(configPath);
    const logFd = openSync(join(dir, 'access.log'), 'w');
    const destination = batchedStdout({ fd: logFd, minLength: 32_768, fileBlockBytes: 65_536, pipeBlockBytes: 65_536 });
    const logger = createLogger({ level: config.logging.level, destination });
    const backends = await createBackends(config, { warn: () => {} });
    const server = createIcapServer(config, { logger, backends });
    try {
      // Round 0 warms up (JIT, caches) and is not reported.
      for (let round = 0; round <= rounds; round++) {
        results.push(await runRound(server.accept.bind(server), request, expected, connections, perRound));
      }
    } finally {
      await server.close(0);
      await destination.end();
      closeSync(logFd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const reported = results.slice(1);
  const cpu = reported.map((r) => r.cpuUsPerRequest).sort((a, b) => a - b);
  const mid = median(cpu);
  if (values.json) {
    console.log(JSON.stringify({ tool: 'icap-bridge-bench/hot-path', scenario, connections, requestsPerRound: perRound, rounds: reported, medianCpuUsPerRequest: mid, minCpuUsPerRequest: cpu[0] }, null, 2));
    return;
  }
  for (const [i, r] of reported.entries()) {
    console.log(`round ${i + 1}: ${r.requests} requests, ${r.cpuUsPerRequest.toFixed(2)} µs CPU and ${r.wallUsPerRequest.toFixed(2)} µs wall per request`);
  }
  console.log(`${scenario} c=${connections}: median ${mid.toFixed(2)} µs CPU per request (min ${cpu[0]!.toFixed(2)}, max ${cpu.at(-1)!.toFixed(2)})`);
}

function isSmallScenario(name: string): name is SmallScenario {
  return isScenarioName(name) && (SMALL_SCENARIOS as readonly string[]).includes(name);
}

/** `connections` sockets, each sending its next request a turn after its answer, until `total` are answered. */
function runRound(accept: (s: Socket) => void, request: Buffer, expected: string, connections: number, total: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = 0;
    const sockets: MemorySocket[] = [];
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const finish = (): void => {
      const cpu = process.cpuUsage(cpu0);
      const wall = performance.now() - t0;
      for (const s of sockets) s.destroy();
      resolve({ requests: answered, cpuUsPerRequest: (cpu.user + cpu.system) / answered, wallUsPerRequest: (wall * 1000) / answered });
    };
    const sendNext = (socket: MemorySocket): void => {
      if (sent >= total) return;
      sent++;
      socket.send(request);
    };
    for (let i = 0; i < connections; i++) {
      const socket = new MemorySocket(40_000 + i, (answer) => {
        if (answer.toString('latin1', 0, expected.length) !== expected) {
          reject(new Error(`unexpected answer: ${JSON.stringify(answer.toString('latin1', 0, 200))}`));
          return;
        }
        answered++;
        if (answered === total) finish();
        // The client's next request arrives in a later turn, as it would from the network.
        else setImmediate(() => sendNext(socket));
      });
      sockets.push(socket);
      accept(socket as unknown as Socket);
      sendNext(socket);
    }
  });
}

main().catch((err: unknown) => {
  console.error(`hot-path: ${(err as Error).message}`);
  process.exitCode = 1;
});
