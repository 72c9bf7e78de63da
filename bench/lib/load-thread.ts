/** One generator thread of bench/lib/load-threads.ts: runs its share and posts the result and samples back. */
import { parentPort, workerData } from 'node:worker_threads';
import { runLoadWithSamples, type LoadOptions } from '../loadgen.js';

const port = parentPort!;
const opts = workerData as LoadOptions;
const { result, samples } = await runLoadWithSamples({ ...opts, onWindow: (edge) => port.postMessage({ type: 'window', edge }) });
port.postMessage({ type: 'done', result, samples }, [samples.buffer as ArrayBuffer]);
