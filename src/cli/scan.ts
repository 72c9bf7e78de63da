/**
 * `icap-bridge scan [--config FILE] [--service NAME] FILE...`: runs one service's configured
 * backends on local files, with the same merge rules as an ICAP transaction (verdict/decide.ts),
 * and prints one line per file:
 *
 *   FILE: clean
 *   FILE: infected EICAR-Test-File
 *   FILE: error builtin:timeout (scan timed out after 30000 ms); on_error=block
 *
 * Policy rules and lists (services.NAME.rules / lists) are about HTTP requests and do not apply
 * here: the service's own backends and on_error do, as for a request no rule matches.
 *
 * Exit 0 when every file is clean; 1 when any file is infected, blocked or could not be scanned
 * (an error the service's policy allows is still not "clean" for a command-line check); 2 on a
 * usage or configuration error.
 */
import { open, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Backend, ScanMeta } from '../backends/backend.js';
import { closeBackends, createBackends } from '../backends/create-backends.js';
import { ConfigError, defaultConfigPath, loadConfigFile, type Config, type ServiceConfig } from '../config/index.js';
import { runScans } from '../pipeline/run-scans.js';
import type { SpooledBody } from '../pipeline/spooled-body.js';
import { createSpooledBodyReader, spooledBodyFromBuffer } from '../pipeline/spooled-body-reader.js';
import { decide, type Decision } from '../verdict/index.js';

const USAGE = `Usage: icap-bridge scan [--config FILE] [--service NAME] FILE...

Scans each FILE with the backends of a configured service and prints one line per file:
"FILE: clean", "FILE: infected THREAT[, THREAT...]" or "FILE: error ...".
Exits 0 when every file is clean, 1 when any is infected, blocked or unscanned, 2 on a usage
or configuration error.

Options:
  -c, --config FILE    configuration file (default: ${defaultConfigPath()})
  -s, --service NAME   service (or alias) whose backends and on_error policy apply
                       (default: the first service in the file)
  -h, --help           show this help
`;

type FileOutcome = 'clean' | 'not-clean';

export async function run(args: readonly string[]): Promise<number> {
  let values;
  let files: string[];
  try {
    ({ values, positionals: files } = parseArgs({
      args: [...args],
      options: {
        config: { type: 'string', short: 'c' },
        service: { type: 'string', short: 's' },
        help: { type: 'boolean', short: 'h' },
      },
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
  if (files.length === 0) return usageError('no FILE to scan');

  let config: Config;
  try {
    config = loadConfigFile(values.config ?? defaultConfigPath());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`icap-bridge: configuration error\n${err.message}\n`);
    return 2;
  }
  const service = findService(config, values.service);
  if (service === undefined) {
    const names = Object.keys(config.services).join(', ');
    return usageError(`no service ${JSON.stringify(values.service)} in ${config.source} (services: ${names})`);
  }

  let backends: Map<string, Backend>;
  try {
    backends = await createBackends(config);
  } catch (err) {
    // A hash list that does not parse is a configuration mistake like any other: exit 2.
    process.stderr.write(`icap-bridge scan: cannot start the backends: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    const used = service.config.backends.map((name) => backends.get(name)!);
    let allClean = true;
    for (const [index, file] of files.entries()) {
      const outcome = await scanFile(file, index, used, service.config, config.spool.memory_bytes);
      if (outcome !== 'clean') allClean = false;
    }
    return allClean ? 0 : 1;
  } finally {
    await closeBackends(backends);
  }
}

function usageError(message: string): number {
  process.stderr.write(`icap-bridge scan: ${message}\n\n${USAGE}`);
  return 2;
}

/** By name or alias, ignoring case, as the server routes service paths. */
function findService(config: Config, wanted: string | undefined): { name: string; config: ServiceConfig } | undefined {
  const entries = Object.entries(config.services);
  if (wanted === undefined) {
    const [first] = entries;
    return first && { name: first[0], config: first[1] };
  }
  const key = wanted.toLowerCase();
  const found = entries.find(([name, svc]) => name.toLowerCase() === key || svc.aliases.some((a) => a.toLowerCase() === key));
  return found && { name: found[0], config: found[1] };
}

async function scanFile(
  file: string,
  index: number,
  backends: readonly Backend[],
  service: ServiceConfig,
  memoryBytes: number,
): Promise<FileOutcome> {
  let body: SpooledBody;
  try {
    body = await openBody(file, memoryBytes);
  } catch (err) {
    process.stdout.write(`${file}: error cannot read the file: ${(err as Error).message}\n`);
    return 'not-clean';
  }
  const meta: ScanMeta = { transactionId: `scan-${process.pid}-${index + 1}`, method: 'RESPMOD', clientAddress: 'local' };
  const signal = new AbortController().signal;
  const results = await runScans(backends, body, () => meta, () => signal);
  const decision = decide(results, service.on_error);
  process.stdout.write(`${file}: ${describeDecision(decision, service.on_error)}\n`);
  // A sanitized copy is not written anywhere by this command; free its temp file.
  await Promise.all(results.map((r) => (r.outcome === 'sanitized' ? r.dispose() : undefined)));
  return decision.action === 'allow' && decision.reason === 'clean' ? 'clean' : 'not-clean';
}

/**
 * Small files are read into memory; larger ones are scanned from the file itself, never read
 * whole (the same threshold as the server's spool).
 */
async function openBody(file: string, memoryBytes: number): Promise<SpooledBody> {
  const info = await stat(file);
  if (!info.isFile()) throw new Error('not a regular file');
  if (info.size > memoryBytes) return createSpooledBodyReader({ size: info.size, memory: null, path: file });
  const handle = await open(file, 'r');
  try {
    return spooledBodyFromBuffer(await handle.readFile());
  } finally {
    await handle.close();
  }
}

function describeDecision(decision: Decision, onError: string): string {
  switch (decision.reason) {
    case 'clean':
    case 'not-scanned':
      return 'clean';
    case 'infected':
      return `infected ${decision.threats.map((t) => t.name).join(', ')}`;
    case 'sanitized':
      return `sanitized by ${decision.replacement.backend} (the original would be replaced)`;
    case 'error-policy': {
      const errors = decision.errors.map((e) => `${e.backend}:${e.kind} (${e.message})`).join(', ');
      return `error ${errors}; on_error=${onError}`;
    }
    // decide() never returns these (they come from the server's policy stage); listed so a new
    // kind of decision cannot go unprinted.
    case 'rule':
      return `${decision.action === 'allow' ? 'allowed' : 'blocked'} by rule ${decision.rule}`;
    case 'allow-list':
    case 'deny-list':
      return `${decision.action === 'allow' ? 'allowed' : 'blocked'} by ${decision.list}`;
  }
}
