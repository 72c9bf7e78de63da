/**
 * Routes a service path (and its aliases) to a service (DESIGN.md step 2). Aliases let Squid
 * configurations written for MetaDefender ICAP Server (OMSScanReq-AV / OMSScanResp-AV) or c-icap
 * (avscan, virus_scan, squidclamav, srv_clamav) work unchanged. Matching ignores case, as the
 * config loader guarantees names and aliases are unique without it.
 */
import { readFileSync } from 'node:fs';
import type { Backend } from '../backends/backend.js';
import type { Config, ServiceConfig } from '../config/index.js';
import { computeIstag } from './istag.js';

export interface Service {
  readonly name: string;
  readonly config: ServiceConfig;
  readonly methods: ReadonlySet<string>;
  readonly backends: readonly Backend[];
  readonly blockPageTemplate: string;
  readonly istag: string;
}

export class ServiceRegistry {
  readonly #byPath = new Map<string, Service>();
  /** Used on responses that belong to no service (errors before routing). */
  readonly serverIstag: string;

  constructor(config: Config, backends: ReadonlyMap<string, Backend>) {
    const tags: string[] = [];
    for (const [name, svc] of Object.entries(config.services)) {
      const blockPageTemplate = readFileSync(svc.block_page, 'utf8');
      const serviceBackends = svc.backends.map((b) => backends.get(b)!);
      const istag = computeIstag({
        service: { ...svc, block_page: undefined, aliases: undefined },
        blockPageTemplate,
        backends: svc.backends.map((b) => ({ name: b, config: config.backends[b], version: backends.get(b)!.version })),
      });
      tags.push(istag);
      const service: Service = { name, config: svc, methods: new Set(svc.methods), backends: serviceBackends, blockPageTemplate, istag };
      this.#byPath.set(name.toLowerCase(), service);
      for (const alias of svc.aliases) this.#byPath.set(alias.toLowerCase(), service);
    }
    this.serverIstag = computeIstag(tags.sort());
  }

  /** `path` as the decoder gives it: no leading or trailing slash. */
  resolve(path: string): Service | undefined {
    return this.#byPath.get(path.toLowerCase());
  }

  get services(): Service[] {
    return [...new Set(this.#byPath.values())];
  }
}
