/**
 * Runs the MetaDefender Core emulator alone (README.md):
 *
 *   npm run emulator:metadefender -- [--config emulator.yaml] [--host 127.0.0.1] [--port 8008]
 *
 * Prints the base URL on stdout and stops on SIGINT / SIGTERM.
 */
import { parseArgs } from 'node:util';
import { loadOptionsFile, type EmulatorOptions } from './config.js';
import { startEmulator } from './emulator.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string', short: 'c' },
    host: { type: 'string' },
    port: { type: 'string', short: 'p' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write('usage: emulator:metadefender [--config FILE.(json|yaml)] [--host HOST] [--port PORT]\n');
  process.exit(0);
}

const options: EmulatorOptions = values.config ? loadOptionsFile(values.config) : {};
if (values.host !== undefined) options.host = values.host;
options.port = values.port !== undefined ? Number(values.port) : (options.port ?? 8008);

const emulator = await startEmulator(options);
process.stdout.write(`MetaDefender Core emulator listening on ${emulator.url}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  emulator.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
