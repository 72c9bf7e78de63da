/**
 * One loaded configuration with the backends built for it. SIGHUP builds a new generation; new
 * requests use it at once, while requests already running keep theirs (DESIGN.md
 * "Configuration"). A retired generation closes its backends when its last request ends.
 */
import type { DecoderLimits } from '../../protocol/index.js';
import type { Backend } from '../backends/backend.js';
import { closeBackends } from '../backends/create-backends.js';
import type { Config } from '../config/index.js';
import type { SpoolOptions } from '../pipeline/spool.js';
import { ServiceRegistry } from './service-registry.js';

export interface ConnectionTimeouts {
  readonly headerMs: number;
  readonly bodyIdleMs: number;
  readonly keepAliveMs: number;
  readonly writeIdleMs: number;
}

export function limitsFromConfig(config: Config): DecoderLimits {
  const l = config.server.limits;
  return {
    icapHeaderBytes: l.icap_header_bytes,
    httpHeaderBytes: l.http_header_bytes,
    headerCount: l.header_count,
    chunkLineBytes: l.chunk_line_bytes,
    bodyBytes: l.body_bytes,
    previewBytes: l.preview_bytes,
  };
}

export class Generation {
  readonly config: Config;
  readonly backends: ReadonlyMap<string, Backend>;
  readonly registry: ServiceRegistry;
  readonly limits: DecoderLimits;
  readonly timeouts: ConnectionTimeouts;
  readonly spool: SpoolOptions;
  #inFlight = 0;
  #retired = false;
  #closed: Promise<void> | null = null;

  constructor(config: Config, backends: ReadonlyMap<string, Backend>) {
    this.config = config;
    this.backends = backends;
    this.registry = new ServiceRegistry(config, backends);
    this.limits = limitsFromConfig(config);
    const t = config.server.timeouts;
    this.timeouts = { headerMs: t.header_ms, bodyIdleMs: t.body_idle_ms, keepAliveMs: t.keep_alive_ms, writeIdleMs: t.write_idle_ms };
    this.spool = { memoryBytes: config.spool.memory_bytes, directory: config.spool.directory };
  }

  /** A request starts using this generation. */
  retain(): void {
    this.#inFlight++;
  }

  /** The request ended; the last one out of a retired generation closes its backends. */
  release(): void {
    this.#inFlight--;
    if (this.#retired && this.#inFlight === 0) void this.close();
  }

  /** No new requests will use it; it closes as soon as nothing runs on it. */
  retire(): void {
    this.#retired = true;
    if (this.#inFlight === 0) void this.close();
  }

  close(): Promise<void> {
    this.#closed ??= closeBackends(this.backends);
    return this.#closed;
  }
}
