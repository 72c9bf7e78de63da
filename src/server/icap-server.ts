/**
 * createIcapServer(config, deps) → listen() / reload() / close(): the listeners (plain and TLS),
 * the connection set, the Max-Connections guard, configuration generations and graceful
 * shutdown. Everything per request lives in IcapConnection.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Backend } from '../backends/backend.js';
import { warnIfListenersChanged } from '../cluster/restart-only.js';
import type { Config } from '../config/index.js';
import type { AccessRecord } from '../observability/access-log.js';
import type { Readiness } from '../observability/admin-server.js';
import type { Logger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import { spoolBytesOnDisk } from '../pipeline/spool.js';
import { createAccessLogQueue } from './access-log-queue.js';
import { IcapConnection, type ConnectionContext } from './connection.js';
import { Generation } from './generation.js';
import { errorResponse } from './response-headers.js';


export interface IcapServerDeps {
  readonly logger: Logger;
  /** The backends the configuration's services use; the server owns them from now on and closes them. */
  readonly backends: ReadonlyMap<string, Backend>;
  /** Observers of finished transactions (tests). */
  readonly onTransaction?: (record: AccessRecord) => void;
}

export interface BoundListener extends AddressInfo {
  readonly tls: boolean;
}

export interface IcapServer {
  /** Starts every configured listener; resolves with their bound addresses (port 0 → real port). */
  listen(): Promise<BoundListener[]>;
  /**
   * Serves a connection accepted elsewhere, as a listener would (Max-Connections included). The
   * listeners use it; so does bench/hot-path.ts, which feeds in-memory sockets to measure the
   * JavaScript a request costs without the kernel's share, and test/server/pipelined-input.test.ts,
   * which watches how much the server side of a socket has read.
   */
  accept(socket: Socket): void;
  /**
   * Switches to a new configuration and its backends: new requests use them at once, running
   * ones finish on the old, whose backends close when the last of those ends. Listener addresses
   * are not changed by a reload.
   */
  reload(config: Config, backends: ReadonlyMap<string, Backend>): void;
  /** Stops accepting, lets in-flight transactions finish for up to `graceMs`, cuts the rest, closes backends. */
  close(graceMs?: number): Promise<void>;
  readonly config: Config;
  readonly connectionCount: number;
  readonly metrics: Metrics;
  readiness(): Readiness;
  /** ISTag per service name, for logs and tests. */
  istags(): Record<string, string>;
}

export function createIcapServer(initialConfig: Config, deps: IcapServerDeps): IcapServer {
  const logger = deps.logger;
  let gen = new Generation(initialConfig, deps.backends);
  const connections = new Set<IcapConnection>();
  const servers: Server[] = [];
  // Transaction ids: a per-process random prefix and a counter, unique across nodes and restarts.
  const idPrefix = randomBytes(4).toString('hex');
  let counter = 0;

  const metrics = createMetrics({
    openConnections: () => connections.size,
    backends: () => gen.backends,
    spoolBytesOnDisk,
  });

  const accessLog = createAccessLogQueue(
    logger,
    () => gen.config.logging.access_log,
    () => gen.config.logging.access_log_format,
  );
  const ctx: ConnectionContext = {
    current: () => gen,
    logger,
    nextTransactionId: () => `${idPrefix}-${(++counter).toString(36)}`,
    onTransactionFinished: (record) => {
      accessLog.log(record);
      metrics.recordTransaction(record);
      deps.onTransaction?.(record);
    },
    onOptions: (record) => {
      accessLog.log(record);
      metrics.recordOptions(record.service, record.icap_status);
    },
    onRejected: (status) => metrics.recordProtocolError(status),
  };

  function onConnection(socket: Socket): void {
    const max = gen.config.server.max_connections;
    if (connections.size >= max) {
      // Past Max-Connections (advertised in OPTIONS): a clear 503, then close.
      logger.warn({ client: socket.remoteAddress, max_connections: max }, 'connection refused: Max-Connections reached');
      metrics.recordRejectedConnection('max_connections');
      socket.on('error', () => {});
      socket.end(errorResponse(503, gen.registry.serverIstag));
      socket.resume();
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    const connection = new IcapConnection(socket, ctx);
    connections.add(connection);
    void connection.closed.then(() => connections.delete(connection));
  }

  function createTlsListener(config: Config): Server {
    const tls = config.server.tls;
    const server = createTlsServer(
      {
        cert: readFileSync(tls.cert!),
        key: readFileSync(tls.key!),
        ...(tls.client_ca !== undefined && { ca: readFileSync(tls.client_ca), requestCert: true, rejectUnauthorized: true }),
      },
      onConnection,
    );
    server.on('tlsClientError', (err, socket) => logger.info({ err: err.message, client: socket.remoteAddress }, 'TLS handshake failed'));
    return server;
  }

  async function bind(server: Server, host: string, port: number, tls: boolean): Promise<BoundListener> {
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
    logger.info({ host: address.address, port: address.port, tls }, 'listening');
    return { ...address, tls };
  }

  return {
    get config() {
      return gen.config;
    },
    get connectionCount() {
      return connections.size;
    },
    metrics,
    accept: onConnection,

    async listen() {
      const config = gen.config;
      const bound: BoundListener[] = [];
      for (const { host, port } of config.server.listen) {
        bound.push(await bind(createServer({ noDelay: true }, onConnection), host, port, false));
      }
      if (config.server.tls.enabled) {
        for (const { host, port } of config.server.tls.listen) bound.push(await bind(createTlsListener(config), host, port, true));
      }
      return bound;
    },

    reload(config, backends) {
      const old = gen;
      gen = new Generation(config, backends);
      old.retire();
      warnIfListenersChanged(logger, old.config, config);
    },

    readiness() {
      const problems: Record<string, string> = {};
      for (const service of gen.registry.services) {
        for (const backend of service.backends) {
          if (!backend.status().some((e) => e.healthy)) problems[backend.name] = 'no healthy endpoint';
        }
      }
      if (servers.length === 0) problems['listeners'] = 'not listening';
      return { ready: Object.keys(problems).length === 0, problems };
    },

    istags() {
      return Object.fromEntries(gen.registry.services.map((s) => [s.name, s.istag]));
    },

    async close(graceMs = 10_000) {
      // server.close() stops accepting at once, but its callback waits for every connection to
      // end, so it is awaited only after the connections were drained or cut.
      const listenersClosed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      servers.length = 0;
      for (const c of connections) c.closeWhenIdle();
      const all = Promise.all([...connections].map((c) => c.closed));
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
      if ((await Promise.race([all, timer])) === 'timeout') {
        logger.warn({ grace_ms: graceMs, connections: connections.size }, 'grace period over: closing remaining connections');
        for (const c of connections) c.destroy();
        await all;
      }
      await listenersClosed;
      accessLog.drain();
      gen.retire();
      await gen.close();
    },
  };
}
