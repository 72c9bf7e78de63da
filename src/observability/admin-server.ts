/**
 * The admin HTTP listener: GET /metrics (Prometheus text), /healthz (alive), /readyz (every
 * backend a service needs has a healthy endpoint). Plain node:http: three fixed routes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';

export interface Readiness {
  ready: boolean;
  /** Backend name → why it is not ready; empty when ready. */
  problems: Record<string, string>;
}

/**
 * Where /metrics comes from: a prom-client Registry (one process), or the cluster primary's
 * aggregation of every worker's registry (src/cluster/cluster-metrics.ts).
 */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface AdminServer {
  listen(host: string, port: number): Promise<AddressInfo>;
  close(): Promise<void>;
}

export function createAdminServer(deps: {
  metrics: () => MetricsSource;
  /** A cluster primary asks its workers, so the answer may come later. */
  readiness: () => Readiness | Promise<Readiness>;
  logger: Logger;
}): AdminServer {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/metrics': {
        const registry = deps.metrics();
        registry.metrics().then(
          (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
          (err: unknown) => {
            deps.logger.error({ err }, 'metrics collection failed');
            res.writeHead(500).end();
          },
        );
        return;
      }
      case '/healthz':
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        Promise.resolve()
          .then(() => deps.readiness())
          .then(
            (r) => res.writeHead(r.ready ? 200 : 503, { 'Content-Type': 'application/json' }).end(`${JSON.stringify(r)}\n`),
            (err: unknown) => {
              deps.logger.error({ err }, 'readiness check failed');
              res.writeHead(503, { 'Content-Type': 'application/json' }).end(`${JSON.stringify({ ready: false, problems: { readiness: 'check failed' } })}\n`);
            },
          );
        return;
      }
      default:
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  });
  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
