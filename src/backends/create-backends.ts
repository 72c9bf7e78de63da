/** Builds every configured backend once at start; services share them by name. */
import type { BackendConfig, Config } from '../config/index.js';
import type { Backend } from './backend.js';
import { createBuiltinBackend } from './builtin/builtin-backend.js';

async function createBackend(name: string, config: BackendConfig): Promise<Backend> {
  switch (config.type) {
    case 'builtin':
      return createBuiltinBackend({
        name,
        workers: config.workers,
        timeoutMs: config.timeout_ms,
        eicar: config.eicar,
        hashLists: config.hash_lists,
      });
  }
}

/** Only the backends some service uses are started. On failure, the ones already started are closed. */
export async function createBackends(config: Config): Promise<Map<string, Backend>> {
  const used = new Set(Object.values(config.services).flatMap((s) => s.backends));
  const backends = new Map<string, Backend>();
  try {
    for (const name of used) backends.set(name, await createBackend(name, config.backends[name]!));
  } catch (err) {
    await closeBackends(backends);
    throw err;
  }
  return backends;
}

export async function closeBackends(backends: ReadonlyMap<string, Backend>): Promise<void> {
  await Promise.allSettled([...backends.values()].map((b) => b.close()));
}
