/** The V8 settings a server sets for itself, each unless the operator chose it (src/cli/v8-tuning.ts). */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT, operatorSetV8Option, tuneV8, V8_TUNING } from '../../src/cli/v8-tuning.js';

const ALL = [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, '--no-parallel-scavenge', '--no-minor-gc-task'];

describe('tuneV8', () => {
  it('sets every flag when neither the command line nor NODE_OPTIONS has it', () => {
    expect(tuneV8(['--enable-source-maps'], '--max-old-space-size=512')).toEqual(ALL);
  });

  it.each([
    [['--heap-growing-percent=50'], undefined],
    [['--heap_growing_percent=50'], ''],
    [[], '--max-old-space-size=512 --heap-growing-percent=50'],
    [[], '--heap-growing-percent 50'],
  ])("leaves an operator's own heap growing factor alone: execArgv %j, NODE_OPTIONS %j", (execArgv, nodeOptions) => {
    expect(operatorSetV8Option('heap-growing-percent', execArgv, nodeOptions)).toBe(true);
    expect(tuneV8(execArgv, nodeOptions)).toEqual(['--no-parallel-scavenge', '--no-minor-gc-task']);
  });

  it.each([[['--parallel-scavenge']], [['--no-parallel-scavenge']], [['--no_parallel_scavenge']]])(
    "leaves an operator's own parallel scavenge setting alone: execArgv %j",
    (execArgv) => {
      expect(tuneV8(execArgv, undefined)).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, '--no-minor-gc-task']);
    },
  );

  it.each([
    [['--minor-gc-task'], undefined],
    [[], '--no-minor_gc_task'],
  ])("leaves an operator's own minor GC task setting alone: execArgv %j, NODE_OPTIONS %j", (execArgv, nodeOptions) => {
    expect(tuneV8(execArgv, nodeOptions)).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, '--no-parallel-scavenge']);
  });

  it('does not mistake another flag for one', () => {
    expect(operatorSetV8Option('heap-growing-percent', ['--heap-growing-percentage-of-nothing'], '--no-heap-growing-percent-x')).toBe(false);
    expect(operatorSetV8Option('parallel-scavenge', ['--parallel-scavenge-task-trace'], '--no-parallel-scavenger')).toBe(false);
  });

  it('the flags are ones V8 takes at run time (a process sets them and keeps working)', () => {
    // An unknown or malformed flag would be reported on stderr by V8; a crash would exit non-zero.
    const flags = V8_TUNING.map((t) => t.flag).join(' ');
    const r = spawnSync(
      process.execPath,
      ['-e', `require('node:v8').setFlagsFromString('${flags}'); let a = []; for (let i = 0; i < 200000; i++) { a.push(Buffer.alloc(64)); if (a.length > 1000) a = []; } console.log('ok')`],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
    expect(r.stderr).toBe('');
  });

  it('--no-minor-gc-task set at run time means fewer scavenges for the same allocations', () => {
    // The same short-lived allocations in slices, a loop turn between them as in a server (V8's
    // scavenge task runs between turns): count the young-generation GCs with and without the task.
    const program = (flag: string): string =>
      `${flag === '' ? '' : `require('node:v8').setFlagsFromString('${flag}');`}
      const { PerformanceObserver } = require('node:perf_hooks');
      let minor = 0;
      new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind === 1) minor++; }).observe({ entryTypes: ['gc'] });
      let keep = [];
      let slices = 0;
      (function slice() {
        for (let i = 0; i < 20000; i++) { keep.push({ a: i, b: 'x' + i }); if (keep.length > 64) keep = []; }
        if (++slices < 1500) setImmediate(slice); else setTimeout(() => console.log(minor), 50);
      })();`;
    const scavenges = (flag: string): number => {
      const r = spawnSync(process.execPath, ['-e', program(flag)], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(0);
      return Number(r.stdout.trim());
    };
    const withTask = scavenges('');
    const withoutTask = scavenges('--no-minor-gc-task');
    expect(withTask).toBeGreaterThan(50);
    // 288 against 267 on Node 20.20 here: every scavenge at a full young generation, not at 80 %.
    expect(withoutTask).toBeLessThan(withTask * 0.97);
  });
});
