/**
 * Task module for worker-pool.test.ts. Loaded as TypeScript inside a worker thread, so it also
 * proves the tsx loader wiring of createWorkerPool.
 */
import { workerData } from 'piscina';

export type PoolTestTask =
  | { op: 'echo'; value: unknown }
  | { op: 'sleep'; ms: number }
  | { op: 'throw'; message: string }
  | { op: 'length'; bytes: Uint8Array }
  | { op: 'workerData' };

export default async function run(task: PoolTestTask): Promise<unknown> {
  switch (task.op) {
    case 'echo':
      return task.value;
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, task.ms));
      return 'slept';
    case 'throw':
      throw new Error(task.message);
    case 'length':
      return task.bytes.length;
    case 'workerData':
      return workerData;
  }
}
