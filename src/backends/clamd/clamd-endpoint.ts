/**
 * One clamd endpoint as the backend sees it: where to connect and what its last VERSION said.
 * Health, load and queueing are the generic pool's (src/backends/pool); this is the resource
 * the pool hands out with each lease.
 */
import type { PoolTarget } from '../pool/pooled-endpoints.js';
import { parseClamdEndpoint, type ClamdAddress } from './endpoint.js';

export class ClamdEndpoint {
  readonly address: ClamdAddress;
  /** Last VERSION reply text; null when not known. */
  version: string | null = null;
  /** VERSION was answered with COMMAND UNAVAILABLE / UNKNOWN COMMAND (disabled, or not implemented). */
  versionRefused = false;

  constructor(address: ClamdAddress) {
    this.address = address;
  }

  /** For messages and the access log: the pool endpoint id. */
  get label(): string {
    return this.address.label;
  }

  /** The address of a pool target: a record pinned by DNS mode, else the endpoint text as written. */
  static fromTarget(target: PoolTarget): ClamdEndpoint {
    if (target.pinned) return new ClamdEndpoint({ kind: 'tcp', host: target.address, port: target.port, label: target.id });
    const parsed = parseClamdEndpoint(target.configured);
    // The backend parsed every entry before building the pool, so this cannot fail.
    if (!parsed.ok) throw new Error(`clamd endpoint ${JSON.stringify(target.configured)}: ${parsed.reason}`);
    return new ClamdEndpoint(parsed.address);
  }
}
