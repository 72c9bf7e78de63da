/**
 * createIcapServer(config, deps) → listen() / close(): the listeners, the connection set, the
 * Max-Connections guard and graceful shutdown. Everything per-request lives in IcapConnection.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { DecoderLimits } from '../../protocol/index.js';
import type { Backend } from '../backends/backend.js';
import type { Config } from '../config/index.js';
import { writeAccessLog, type AccessRecord } from '../observability/access-log.js';
import type { Logger } from '../observability/logger.js';
import { IcapConnection, type ConnectionContext } from './connection.js';
import { errorResponse } from './response-headers.js';
import { ServiceRegistry } from './service-registry.js';

export interface IcapServerDeps {
  readonly logger: Logger;
  readonly backends: ReadonlyMap<string, Backend>;
  /** Observers of finished transactions (tests, metrics later). */
  readonly onTransaction?: (record: AccessRecord) => void;
}

export interface IcapServer {
  /** Starts every configured listener; resolves with their bound addresses (port 0 → real port). */
  listen(): Promise<AddressInfo[]>;
  /** Stops accepting, lets in-flight transactions finish for up to `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
  readonly connectionCount: number;
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

export function createIcapServer(config: Config, deps: IcapServerDeps): IcapServer {
  const logger = deps.logger;
  const registry = new ServiceRegistry(config, deps.backends);
  const connections = new Set<IcapConnection>();
  const servers: Server[] = [];
  // Transaction ids: a per-process random prefix and a counter, unique across nodes and restarts.
  const idPrefix = randomBytes(4).toString('hex');
  let counter = 0;

  const ctx: ConnectionContext = {
    registry: () => registry,
    limits: limitsFromConfig(config),
    timeouts: {
      headerMs: config.server.timeouts.header_ms,
      bodyIdleMs: config.server.timeouts.body_idle_ms,
      keepAliveMs: config.server.timeouts.keep_alive_ms,
    },
    spool: { memoryBytes: config.spool.memory_bytes, directory: config.spool.directory },
    maxConnections: config.server.max_connections,
    logger,
    nextTransactionId: () => `${idPrefix}-${(++counter).toString(36)}`,
    onTransactionFinished: (record) => {
      writeAccessLog(logger, record, config.logging.access_log);
      deps.onTransaction?.(record);
    },
  };

  function onConnection(socket: Socket): void {
    if (connections.size >= config.server.max_connections) {
      // Past Max-Connections (advertised in OPTIONS): a clear 503, then close.
      logger.warn({ client: socket.remoteAddress, max_connections: config.server.max_connections }, 'connection refused: Max-Connections reached');
      socket.on('error', () => {});
      socket.end(errorResponse(503, registry.serverIstag));
      socket.resume();
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    const connection = new IcapConnection(socket, ctx);
    connections.add(connection);
    void connection.closed.then(() => connections.delete(connection));
  }

  return {
    get connectionCount() {
      return connections.size;
    },

    async listen() {
      const addresses: AddressInfo[] = [];
      for (const { host, port } of config.server.listen) {
        const server = createServer({ noDelay: true }, onConnection);
        server.on('error', (err) => logger.error({ err }, 'listener error'));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => {
            server.off('error', reject);
            resolve();
          });
        });
        servers.push(server);
        const address = server.address() as AddressInfo;
        addresses.push(address);
        logger.info({ host: address.address, port: address.port }, 'listening');
      }
      return addresses;
    },

    async close(graceMs = 10_000) {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      for (const c of connections) c.closeWhenIdle();
      const all = Promise.all([...connections].map((c) => c.closed));
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
      if ((await Promise.race([all, timer])) === 'timeout') {
        for (const c of connections) c.destroy();
        await all;
      }
    },
  };
}
