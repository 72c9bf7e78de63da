/**
 * Preload for a server whose allocations are to be counted (bench/alloc-top.ts):
 *
 *   node --import ./bench/lib/heap-sampling-preload.mjs dist/src/cli.js --config …
 *
 * Plain JavaScript, so the measured server loads no TypeScript loader (tsx would allocate too).
 * Starts V8's sampling heap profiler 1 s after start (config and warm-up allocations mostly done) with
 * objects the GC collected kept in the profile: what a request allocates, not what stays alive. On
 * SIGUSR2 it writes the profile to $HEAP_PROFILE_OUT (default ./alloc.heapprofile) and keeps running.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const session = new Session();
session.connect();
/** @type {(method: string, params?: object) => Promise<unknown>} */
const post = (method, params) =>
  new Promise((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));

setTimeout(() => {
  void post('HeapProfiler.startSampling', {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}, 1000).unref();

process.on('SIGUSR2', () => {
  void post('HeapProfiler.stopSampling').then((result) => {
    const out = process.env.HEAP_PROFILE_OUT ?? 'alloc.heapprofile';
    writeFileSync(out, JSON.stringify(/** @type {{ profile: unknown }} */ (result).profile));
    process.stderr.write(`heap profile written to ${out}\n`);
  });
});
