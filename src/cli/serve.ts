/** `icap-bridge [--config FILE]`: run the server until SIGTERM/SIGINT (main.ts does the wiring). */
import { parseArgs } from 'node:util';
import { ConfigError, defaultConfigPath } from '../config/index.js';
import { handleSignals, start } from '../main.js';

export async function run(args: readonly string[], usage: string, version: () => string): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`icap-bridge: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
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
