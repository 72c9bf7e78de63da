/**
 * Finding a worker's task module whether we run from TypeScript sources or from dist/.
 *
 * Tests (vitest) and `node --import tsx` run the `.ts` sources: import.meta.url of the owning
 * module ends in `.ts`, the task module next to it is `.ts` too, and a worker thread starts with
 * a bare Node that cannot load it, so the worker gets tsx as an `--import` loader.
 * Production runs dist/**.js: the task module is the compiled `.js` beside its owner and needs
 * no loader (tsx is only a devDependency).
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Resolves `specifier` (written as the compiled name, e.g. './scan-worker.js') against the
 * owner's import.meta.url; when the owner is a `.ts` source, the `.ts` sibling is returned.
 */
export function resolveWorkerFile(ownerUrl: string, specifier: string): string {
  const url = new URL(specifier, ownerUrl);
  if (isTypeScript(new URL(ownerUrl).pathname)) url.pathname = url.pathname.replace(/\.[cm]?js$/, '.ts');
  return fileURLToPath(url);
}

/**
 * V8 options a Worker refuses in execArgv (ERR_WORKER_INVALID_EXEC_ARGV: they are the process's,
 * not a thread's), among those an operator may start the server with: `node
 * --max-old-space-size=512 dist/src/cli.js` used to fail at start-up when the scan pool's first
 * thread was created. Not passed on: a thread's heap is sized by piscina's resourceLimits.
 */
const PROCESS_WIDE_V8_FLAG =
  /^--(?:(?:max|min|initial)[-_](?:old|semi|heap)[-_](?:space[-_])?size|stack[-_]size|stack[-_]trace[-_]limit|expose[-_]gc|huge[-_]max[-_]old[-_]generation[-_]size|jitless|interpreted[-_]frames[-_]native[-_]stack|perf[-_]basic[-_]prof|perf[-_]prof)(?:=|$)/;

/** execArgv for piscina's workers: the parent's flags (less process-wide V8 ones), plus tsx for a `.ts` task module. */
export function workerExecArgv(filename: string): string[] {
  const inherited = process.execArgv.filter((arg) => !PROCESS_WIDE_V8_FLAG.test(arg));
  if (!isTypeScript(filename) || hasTsxImport(inherited)) return inherited;
  return [...inherited, '--import', tsxLoaderUrl()];
}

function isTypeScript(path: string): boolean {
  return /\.[cm]?ts$/.test(path);
}

function hasTsxImport(execArgv: readonly string[]): boolean {
  return execArgv.some((arg, i) => {
    const value = arg.startsWith('--import=') ? arg.slice('--import='.length) : arg === '--import' ? execArgv[i + 1] : undefined;
    return value !== undefined && (value === 'tsx' || /[\\/]tsx[\\/]/.test(value));
  });
}

/**
 * tsx's loader as an absolute URL: a bare `--import tsx` would be resolved against the worker's
 * working directory, which need not be the project root.
 */
function tsxLoaderUrl(): string {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  } catch {
    return 'tsx';
  }
}
