import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createWorkerPool, resolveWorkerFile, type WorkerPool } from '../../src/pipeline/worker-pool.js';
import { workerExecArgv } from '../../src/pipeline/worker-module.js';
import type { PoolTestTask } from './pool-task.fixture.js';

const TASK_FILE = resolveWorkerFile(import.meta.url, './pool-task.fixture.js');
const pools: WorkerPool[] = [];

function newPool(threads: number, maxQueue: number, workerData?: unknown): WorkerPool {
  const pool = createWorkerPool({ filename: TASK_FILE, threads, maxQueue, workerData });
  pools.push(pool);
  return pool;
}

function run(pool: WorkerPool, task: PoolTestTask, opts?: Parameters<WorkerPool['run']>[1]): Promise<unknown> {
  return pool.run<PoolTestTask, unknown>(task, opts);
}

afterAll(async () => {
  await Promise.all(pools.map((p) => p.destroy()));
});

describe('worker module resolution', () => {
  it('uses the .ts sibling and tsx when the owner is a .ts source', () => {
    expect(TASK_FILE).toBe(fileURLToPath(new URL('./pool-task.fixture.ts', import.meta.url)));
    const argv = workerExecArgv(TASK_FILE)!;
    expect(argv.at(-2)).toBe('--import');
    expect(argv.at(-1)).toMatch(/tsx/);
  });

  it('uses the .js sibling and no loader when the owner is compiled', () => {
    const file = resolveWorkerFile('file:///app/dist/src/backends/builtin/builtin-backend.js', './scan-worker.js');
    expect(file).toBe('/app/dist/src/backends/builtin/scan-worker.js');
    // undefined: the threads inherit the parent's options unchecked (see the next describe).
    expect(workerExecArgv(file)).toBeUndefined();
  });

  it('does not add tsx twice: a parent that has it passes it on by inheritance', () => {
    const argv = workerExecArgv(TASK_FILE)!;
    const saved = process.execArgv;
    try {
      process.execArgv = argv;
      expect(workerExecArgv(TASK_FILE)).toBeUndefined();
    } finally {
      process.execArgv = saved;
    }
  });
  it('leaves out the V8 flags a Worker refuses (node --max-old-space-size=512 …), and the pool starts', async () => {
    const saved = process.execArgv;
    try {
      process.execArgv = [...saved, '--max-old-space-size=512', '--max_semi_space_size=8', '--stack-size=2000', '--expose-gc', '--enable-source-maps'];
      const argv = workerExecArgv(TASK_FILE)!;
      expect(argv.filter((a) => /space|stack|gc/.test(a))).toEqual([]);
      expect(argv).toContain('--enable-source-maps');
      // Each refused flag on its own makes the Worker constructor throw, so the pool proves the filter.
      const pool = newPool(1, 4);
      expect(await run(pool, { op: 'echo', value: 'started' })).toBe('started');
    } finally {
      process.execArgv = saved;
    }
  });
});

describe('a server started with flags a Worker refuses in an explicit execArgv', () => {
  it('starts its pool: compiled task modules inherit the options unchecked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pool-flags-'));
    try {
      // A compiled (.js) task module, as in production: no tsx needed in the thread.
      const task = join(dir, 'task.mjs');
      writeFileSync(task, 'export default (t) => `ran ${t}`;\n');
      const poolModule = pathToFileURL(fileURLToPath(new URL('../../src/pipeline/worker-pool.ts', import.meta.url))).href;
      const script = join(dir, 'start-pool.mjs');
      writeFileSync(script, `
        const { createWorkerPool } = await import(${JSON.stringify(poolModule)});
        const pool = createWorkerPool({ filename: ${JSON.stringify(task)}, threads: 1, maxQueue: 1 });
        console.log('result:', await pool.run('task'));
        await pool.destroy();\n`);
      // Each of these alone in an explicit execArgv makes new Worker() throw ERR_WORKER_INVALID_EXEC_ARGV.
      const refused = ['--trace-gc', '--abort-on-uncaught-exception', '--use-openssl-ca', '--zero-fill-buffers', '--max-old-space-size=512', '--title=pool-flags-test'];
      const r = spawnSync(process.execPath, [...refused, '--import', 'tsx', script], {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.stderr).not.toMatch(/ERR_WORKER_INVALID_EXEC_ARGV/);
      expect(r.stdout).toMatch(/^result: ran task$/m);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createWorkerPool', () => {
  it('runs typed tasks in a .ts worker and passes workerData', async () => {
    const pool = newPool(1, 4, { tag: 'hello' });
    expect(pool.threads).toBe(1);
    expect(await run(pool, { op: 'echo', value: { a: [1, 2] } })).toEqual({ a: [1, 2] });
    expect(await run(pool, { op: 'workerData' })).toEqual({ tag: 'hello' });
    expect(pool.utilization).toBeGreaterThanOrEqual(0);
  });

  it('moves buffers in the transfer list', async () => {
    const pool = newPool(1, 4);
    const bytes = new Uint8Array(1000);
    expect(await run(pool, { op: 'length', bytes }, { transferList: [bytes.buffer] })).toBe(1000);
    expect(bytes.byteLength).toBe(0); // detached: moved, not copied
  });

  it('threads 0 means one per core', async () => {
    const pool = newPool(0, 0);
    expect(pool.threads).toBe(availableParallelism());
  });

  it('refuses tasks beyond threads + maxQueue with ICAP_ERR_POOL_QUEUE_FULL, even with signals', async () => {
    const pool = newPool(1, 1);
    const signal = new AbortController().signal;
    const first = run(pool, { op: 'sleep', ms: 300 }, { signal });
    const second = run(pool, { op: 'sleep', ms: 10 }, { signal });
    await expect(run(pool, { op: 'echo', value: 3 }, { signal })).rejects.toMatchObject({ code: 'ICAP_ERR_POOL_QUEUE_FULL' });
    expect(pool.queueSize).toBe(1);
    await expect(Promise.all([first, second])).resolves.toEqual(['slept', 'slept']);
    expect(await run(pool, { op: 'echo', value: 4 }, { signal })).toBe(4);
  });

  it('aborts a running task, then keeps working', async () => {
    const pool = newPool(1, 1);
    const controller = new AbortController();
    const pending = run(pool, { op: 'sleep', ms: 10_000 }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('client went away')), 50);
    await expect(pending).rejects.toMatchObject({ code: 'ICAP_ERR_POOL_ABORTED', cause: { message: 'client went away' } });
    await expect(run(pool, { op: 'echo', value: 'next' }, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ICAP_ERR_POOL_ABORTED',
    });
    expect(await run(pool, { op: 'echo', value: 'next' })).toBe('next');
  });

  it('wraps a task failure with ICAP_ERR_POOL_TASK_FAILED and keeps the cause', async () => {
    const pool = newPool(1, 1);
    await expect(run(pool, { op: 'throw', message: 'bad input' })).rejects.toMatchObject({
      code: 'ICAP_ERR_POOL_TASK_FAILED',
      cause: { message: 'bad input' },
    });
  });

  it('rejects pending and later tasks with ICAP_ERR_POOL_CLOSED after destroy', async () => {
    const pool = newPool(1, 1);
    const pending = expect(run(pool, { op: 'sleep', ms: 10_000 })).rejects.toMatchObject({ code: 'ICAP_ERR_POOL_CLOSED' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await Promise.all([pool.destroy(), pool.destroy()]);
    await pending;
    await expect(run(pool, { op: 'echo', value: 1 })).rejects.toMatchObject({ code: 'ICAP_ERR_POOL_CLOSED' });
  });
});
