/** server.processes → how many server processes to run ("auto" = one per CPU this process may use). */
import { availableParallelism } from 'node:os';

export function resolveProcessCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}
