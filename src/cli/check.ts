/**
 * `icap-bridge check [--config FILE]`: validate a configuration file the way the server does at
 * start (every problem, each naming file, key path and rule), without starting anything. For CI
 * and for `ExecStartPre=` / a pre-reload check before sending SIGHUP.
 */
import { parseArgs } from 'node:util';
import { ConfigError, defaultConfigPath, loadConfigFile } from '../config/index.js';

const USAGE = `Usage: icap-bridge check [--config FILE]

Validates the configuration file and exits: 0 and "configuration OK: FILE" when it is valid,
2 and one line per problem when it is not.

Options:
  -c, --config FILE   configuration file (default: ${defaultConfigPath()})
  -h, --help          show this help
`;

export async function run(args: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`icap-bridge check: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const config = loadConfigFile(values.config ?? defaultConfigPath());
    process.stdout.write(`configuration OK: ${config.source}\n`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`icap-bridge: configuration error\n${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
