/**
 * Bytes allocated per request, by function, from a sampling heap profile of a running server
 * (bench/lib/heap-sampling-preload.ts). Deterministic where timings are not: on a noisy host this is
 * the figure to compare between two builds (BENCHMARKS.md, Session 11).
 *
 *   node --import tsx bench/alloc-top.ts PROFILE.heapprofile --requests N [--top 20]
 *
 * N is the number of requests served while the profile was taken (bench/loadgen.ts --count N
 * --warmup 0, started after the profiler: 1 s after the server).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: { requests: { type: 'string' }, top: { type: 'string' } },
  allowPositionals: true,
  strict: true,
});
const requests = Number(values.requests);
if (positionals.length !== 1 || !(requests > 0)) {
  process.stderr.write('usage: node --import tsx bench/alloc-top.ts PROFILE.heapprofile --requests N [--top 20]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as { head: HeapNode };
const byFunction = new Map<string, number>();
let total = 0;
const pending: HeapNode[] = [profile.head];
for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
  const f = node.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  total += node.selfSize;
  if (node.selfSize > 0) byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
  pending.push(...node.children);
}
process.stdout.write(`${Math.round(total / requests)} bytes allocated per request (${requests} requests)\n`);
for (const [key, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top ?? 20))) {
  process.stdout.write(`${String(Math.round(bytes / requests)).padStart(7)}  ${key}\n`);
}
