/**
 * Compiles the project once before the tests, so tests that run the real CLI as a child process
 * (memory, c-icap-client, signals) run what users run: node dist/src/cli.js.
 */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
