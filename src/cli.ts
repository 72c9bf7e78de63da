#!/usr/bin/env node
/** icap-bridge command line: `icap-bridge [--config FILE]`, `--help`, `--version`. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, defaultConfigPath } from './config/index.js';
import { handleSignals, start } from './main.js';

const USAGE = `Usage: icap-bridge [--config FILE]

An ICAP/1.0 server (RFC 3507) that scans HTTP bodies for Squid and other ICAP clients.

Options:
  -c, --config FILE   configuration file (default: ${defaultConfigPath()})
  -h, --help          show this help
  -v, --version       print the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`icap-bridge: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`icap-bridge ${version()}\n`);
    return 0;
  }
  try {
    const running = await start(values.config ?? defaultConfigPath());
    handleSignals(running);
    return -1; // keep running
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`icap-bridge: configuration error\n${err.message}\n`);
      return 2;
    }
    process.stderr.write(`icap-bridge: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

const code = await main();
if (code >= 0) process.exitCode = code;
