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
 * Options a Worker refuses in an explicit execArgv (ERR_WORKER_INVALID_EXEC_ARGV: V8's and the
 * process's, not a thread's), among those a test run may carry. Only the tsx path below needs it.
 */
const PROCESS_WIDE_V8_FLAG =
  /^--(?:(?:max|min|initial)[-_](?:old|semi|heap)[-_](?:space[-_])?size|stack[-_]size|stack[-_]trace[-_]limit|expose[-_]gc|huge[-_]max[-_]old[-_]generation[-_]size|jitless|interpreted[-_]frames[-_]native[-_]stack|perf[-_]basic[-_]prof|perf[-_]prof)(?:=|$)/;

/**
 * execArgv for piscina's workers; undefined = inherit the parent's options as they are.
 *
 * A Worker given no execArgv takes the parent's Node and V8 options without checking them; an
 * explicit list is checked, and every V8 option (`--max-old-space-size=512`, `--trace-gc`,
 * `--abort-on-uncaught-exception`) and process-wide one (`--use-openssl-ca`, `--title`) in it makes
 * the constructor throw, so `node <any such flag> dist/src/cli.js` failed at start-up when the scan
 * pool's first thread was created. Production (the compiled `.js` task module) therefore inherits.
 * Only a `.ts` task module under a parent without tsx (vitest) needs a list: the parent's flags
 * less the refused ones we know of, plus tsx.
 */
export function workerExecArgv(filename: string): string[] | undefined {
  if (!isTypeScript(filename) || hasTsxImport(process.execArgv)) return undefined;
  const inherited = process.execArgv.filter((arg) => !PROCESS_WIDE_V8_FLAG.test(arg));
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
