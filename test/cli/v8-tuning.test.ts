/** The heap growing factor a server sets for itself, unless the operator chose one (src/cli/heap-growth.ts). */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT, operatorSetHeapGrowth, tuneHeapGrowth } from '../../src/cli/heap-growth.js';

describe('tuneHeapGrowth', () => {
  it('sets --heap-growing-percent when neither the command line nor NODE_OPTIONS has it', () => {
    expect(tuneHeapGrowth(['--enable-source-maps'], '--max-old-space-size=512')).toBe(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  });

  it.each([
    [['--heap-growing-percent=50'], undefined],
    [['--heap_growing_percent=50'], ''],
    [[], '--max-old-space-size=512 --heap-growing-percent=50'],
    [[], '--heap-growing-percent 50'],
  ])('leaves an operator\'s own setting alone: execArgv %j, NODE_OPTIONS %j', (execArgv, nodeOptions) => {
    expect(operatorSetHeapGrowth(execArgv, nodeOptions)).toBe(true);
    expect(tuneHeapGrowth(execArgv, nodeOptions)).toBeNull();
  });

  it('does not mistake another flag for it', () => {
    expect(operatorSetHeapGrowth(['--heap-growing-percentage-of-nothing'], '--no-heap-growing-percent-x')).toBe(false);
  });

  it('the flag is one V8 takes at run time (a process sets it and keeps working)', () => {
    // An unknown or malformed flag would be reported on stderr by V8; a crash would exit non-zero.
    const r = spawnSync(process.execPath, ['-e', `require('node:v8').setFlagsFromString('--heap-growing-percent=${HEAP_GROWING_PERCENT}'); const a = []; for (let i = 0; i < 2000; i++) a.push(Buffer.alloc(65536)); console.log('ok')`], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
    expect(r.stderr).toBe('');
  });
});
