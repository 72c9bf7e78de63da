/**
 * `icap-bridge probe icap://HOST[:PORT]/SERVICE [--timeout MS]`: one ICAP OPTIONS request
 * (RFC 3507 §4.10) over a plain socket. Prints the status line, ISTag and Methods; exits 0 only
 * on `ICAP/1.0 200`. The container's HEALTHCHECK and load-balancer scripts use it.
 *
 * It imports the codec and nothing else of ours, so a health check every few seconds stays cheap.
 */
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { encodeRequestHead } from '../../protocol/index.js';

const USAGE = `Usage: icap-bridge probe icap://HOST[:PORT]/SERVICE [--timeout MS]

Sends an ICAP OPTIONS request and prints the status line, ISTag and Methods.
Exits 0 on "ICAP/1.0 200", 1 on any other answer, a refused connection or a timeout.

Options:
  -t, --timeout MS   give up after MS milliseconds, connecting included (default 5000)
  -h, --help         show this help
`;

const DEFAULT_PORT = 1344;
const DEFAULT_TIMEOUT_MS = 5000;
/** An OPTIONS answer is a few hundred bytes; anything past this without a blank line is not ICAP. */
const MAX_HEAD_BYTES = 65_536;

interface Target {
  readonly host: string;
  readonly port: number;
  readonly uri: string;
}

interface Answer {
  readonly statusLine: string;
  readonly headers: ReadonlyMap<string, string>;
}

class ProbeError extends Error {}

export async function run(args: readonly string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options: { timeout: { type: 'string', short: 't' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) return usageError('expected exactly one icap:// URL');
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 3_600_000) {
    return usageError(`--timeout must be an integer number of milliseconds between 1 and 3600000 (got ${JSON.stringify(values.timeout)})`);
  }
  let target: Target;
  try {
    target = parseTarget(positionals[0]!);
  } catch (err) {
    return usageError((err as Error).message);
  }

  try {
    const answer = await sendOptions(target, timeoutMs);
    process.stdout.write(`${answer.statusLine}\n`);
    for (const name of ['ISTag', 'Methods']) {
      const value = answer.headers.get(name.toLowerCase());
      if (value !== undefined) process.stdout.write(`${name}: ${value}\n`);
    }
    return /^ICAP\/1\.0 200(?: |$)/.test(answer.statusLine) ? 0 : 1;
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err;
    process.stderr.write(`icap-bridge probe: ${err.message}\n`);
    return 1;
  }
}

function usageError(message: string): number {
  process.stderr.write(`icap-bridge probe: ${message}\n\n${USAGE}`);
  return 2;
}

function parseTarget(text: string): Target {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(text)} (expected icap://HOST[:PORT]/SERVICE)`);
  }
  if (url.protocol !== 'icap:') throw new Error(`only icap:// URLs can be probed (got ${url.protocol}//)`);
  if (url.hostname === '') throw new Error(`no host in ${JSON.stringify(text)}`);
  // WHATWG URL keeps the brackets of an IPv6 literal in hostname; net.connect wants them off.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? DEFAULT_PORT : Number(url.port);
  return { host, port, uri: `icap://${url.host}${url.pathname}${url.search}` };
}

function sendOptions(target: Target, timeoutMs: number): Promise<Answer> {
  const where = `${target.host}:${target.port}`;
  return new Promise<Answer>((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port, noDelay: true });
    let received = Buffer.alloc(0);
    const finish = (result: Answer | ProbeError): void => {
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof ProbeError) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => finish(new ProbeError(`no answer from ${where} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      socket.write(
        encodeRequestHead({
          method: 'OPTIONS',
          uri: target.uri,
          headers: [
            ['Host', target.host],
            ['User-Agent', 'icap-bridge-probe'],
          ],
          body: null,
        }),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end !== -1) finish(parseHead(received.toString('latin1', 0, end)));
      else if (received.length > MAX_HEAD_BYTES) finish(new ProbeError(`${where} sent ${received.length} bytes without the end of an ICAP head`));
    });
    socket.once('error', (err) => finish(new ProbeError(`cannot reach ${where}: ${err.message}`)));
    socket.once('close', () => finish(new ProbeError(`${where} closed the connection without a complete answer`)));
  });
}

function parseHead(head: string): Answer | ProbeError {
  const [statusLine = '', ...lines] = head.split('\r\n');
  if (!/^ICAP\/\d\.\d \d{3}/.test(statusLine)) return new ProbeError(`not an ICAP answer: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { statusLine, headers };
}
