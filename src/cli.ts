#!/usr/bin/env node
/**
 * icap-bridge command line. With no subcommand it runs the server (src/cli/serve.ts); `check`,
 * `probe` and `scan` are small tools for operators, container health checks and CI.
 *
 * Each subcommand lives in its own module under cli/ and is imported only when used, so that
 * `probe` (the container's HEALTHCHECK, run every 30 s) does not load the config schema, pino or
 * the worker pool.
 *
 * Exit codes: 0 success; 1 failure (server error, probe failed, a scanned file not clean);
 * 2 usage or configuration error.
 */
import { readFileSync } from 'node:fs';
import { holdSignals } from './cluster/startup-signals.js';

export interface Subcommand {
  /** Runs with the arguments after the subcommand name; resolves to the exit code, or -1 to keep running. */
  run(args: readonly string[]): Promise<number>;
}

const SUBCOMMANDS: Readonly<Record<string, () => Promise<Subcommand>>> = {
  check: () => import('./cli/check.js'),
  probe: () => import('./cli/probe.js'),
  scan: () => import('./cli/scan.js'),
};

const USAGE = `Usage: icap-bridge [--config FILE]
       icap-bridge check [--config FILE]
       icap-bridge probe icap://HOST[:PORT]/SERVICE [--timeout MS]
       icap-bridge scan [--config FILE] [--service NAME] FILE...

An ICAP/1.0 server (RFC 3507) that scans HTTP bodies for Squid and other ICAP clients.

Commands:
  (none)    run the server (stops cleanly on SIGTERM or SIGINT)
  check     validate the configuration file and exit
  probe     send an ICAP OPTIONS request and print the status line, ISTag and Methods;
            exits 0 only on "ICAP/1.0 200" (for health checks)
  scan      scan files with a service's configured backends; prints "FILE: clean",
            "FILE: infected NAME" or "FILE: error ..." per file

Options:
  -c, --config FILE   configuration file (default: the package's config/icap-bridge.yaml)
  -h, --help          show this help (also: icap-bridge COMMAND --help)
  -v, --version       print the version

Exit status: 0 success, 1 failure (probe failed, a file not clean, server error),
2 usage or configuration error.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: readonly string[]): Promise<number> {
  const first = argv[0];
  if (first === '-h' || first === '--help' || first === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (first === '-v' || first === '--version') {
    process.stdout.write(`icap-bridge ${version()}\n`);
    return 0;
  }
  const load = first === undefined ? undefined : SUBCOMMANDS[first];
  if (load !== undefined) {
    try {
      return await (await load()).run(argv.slice(1));
    } catch (err) {
      process.stderr.write(`icap-bridge ${first}: ${(err as Error).stack ?? String(err)}\n`);
      return 1;
    }
  }
  // The server: from now on a signal no longer kills it half started (startup-signals.ts), also
  // while its modules load; serve.ts hands them on to whichever role this process takes.
  const signals = holdSignals();
  const serve = await import('./cli/serve.js');
  return serve.run(argv, USAGE, version, signals);
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
