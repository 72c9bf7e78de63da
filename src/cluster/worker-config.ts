/**
 * The configuration a worker runs: the last one the primary accepted, except the settings a reload
 * does not apply, which stay as the node started. The workers share their listeners through the
 * primary, and a reload does not rebind them (nor reread the TLS certificates, nor change the
 * number of workers or the primary's admin listener), so a worker started after such a reload
 * (a replacement for one that died) must not bind the new address: it would serve a port its
 * siblings do not, and the change would be half applied. (restart-only.ts warns of such changes;
 * config-files.ts and file-snapshots.ts keep the files it names as accepted, TLS as started.)
 */
import type { Config } from '../config/index.js';

/** `accepted` with the restart-only settings of `started`. */
export function workerConfig(started: Config, accepted: Config): Config {
  if (accepted === started) return started;
  return {
    ...accepted,
    server: { ...accepted.server, listen: started.server.listen, tls: started.server.tls, processes: started.server.processes },
    admin: started.admin,
  };
}

