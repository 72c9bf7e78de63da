/** Builds every configured backend once at start; services share them by name. */
import { availableParallelism } from 'node:os';
import type { BackendConfig, Config } from '../config/index.js';
import type { Backend } from './backend.js';
import { createBuiltinBackend } from './builtin/builtin-backend.js';
import { createClamdBackend } from './clamd/clamd-backend.js';
import { createIcapBackend } from './icap/icap-backend.js';
import { createMetaDefenderBackend } from './metadefender/metadefender-backend.js';
import type { EndpointHealthChange } from './pool/endpoint-pool.js';

export interface CreateBackendsOptions {
  /** Where a backend's operational warnings go (clamd `transfer: path` falling back); stderr when absent. */
  readonly warn?: (backend: string, message: string) => void;
  /** Where an endpoint's change of health (up ↔ down, with why) goes; nowhere when absent. */
  readonly endpointHealth?: (backend: string, change: EndpointHealthChange) => void;
}

async function createBackend(
  name: string,
  config: BackendConfig,
  spool: Config['spool'],
  processes: number,
  options: CreateBackendsOptions,
): Promise<Backend> {
  const report = options.endpointHealth;
  const health = report && { onHealthChange: (change: EndpointHealthChange) => report(name, change) };
  switch (config.type) {
    case 'builtin':
      return createBuiltinBackend({
        name,
        // 0: the CPUs shared out between the server processes, so N processes never start N × CPUs threads.
        workers: config.workers === 0 ? Math.max(1, Math.floor(availableParallelism() / processes)) : config.workers,
        inlineMaxBytes: config.inline_max_bytes,
        timeoutMs: config.timeout_ms,
        eicar: config.eicar,
        hashLists: config.hash_lists,
      });
    case 'clamd':
      // transfer: path writes in-memory bodies into the spool directory for clamd to read.
      return createClamdBackend(name, config, {
        spoolDirectory: spool.directory,
        ...(options.warn !== undefined && { warn: (message: string) => options.warn!(name, message) }),
        ...health,
      });
    case 'metadefender':
      return createMetaDefenderBackend({
        name,
        endpoints: config.endpoints,
        apikey: config.apikey,
        rule: config.rule,
        timeoutMs: config.timeout_ms,
        pollInitialMs: config.poll_initial_ms,
        pollMaxMs: config.poll_max_ms,
        hashLookup: config.hash_lookup,
        sanitize: config.sanitize,
        maxFileBytes: config.max_file_bytes,
        // Sanitized files Core returns are spooled like request bodies.
        spool: { memoryBytes: spool.memory_bytes, directory: spool.directory },
        // balance, weights, max_concurrency… and dns, as validated by the schema.
        pool: config,
        ...health,
      });
    case 'icap':
      return createIcapBackend(name, config, { ...health });
  }
}

/** Only the backends some service uses are started. On failure, the ones already started are closed. */
export async function createBackends(config: Config, options: CreateBackendsOptions = {}): Promise<Map<string, Backend>> {
  const used = new Set(Object.values(config.services).flatMap((s) => [...s.backends, ...(s.rules ?? []).flatMap((r) => r.backends ?? [])]));
  const backends = new Map<string, Backend>();
  try {
    const processes = config.server.processes === 'auto' ? availableParallelism() : config.server.processes;
    for (const name of used) backends.set(name, await createBackend(name, config.backends[name]!, config.spool, processes, options));
  } catch (err) {
    await closeBackends(backends);
    throw err;
  }
  return backends;
}

export async function closeBackends(backends: ReadonlyMap<string, Backend>): Promise<void> {
  await Promise.allSettled([...backends.values()].map((b) => b.close()));
}
