/**
 * The files a configuration names that a server process reads itself, and the same configuration
 * pointed at copies of them. A cluster worker reads the primary's copies (file-snapshots.ts), never
 * the originals: those may have been edited or removed since the primary accepted the
 * configuration, and a replacement worker must serve what its siblings serve.
 *
 *   services.*.block_page       read by every generation (service-registry.ts)   reloaded
 *   backends.*.hash_lists       builtin: read by each backend built              reloaded
 *   backends.*.tls.ca_file      icap: the same                                   reloaded
 *   server.tls.cert/key/client_ca  read when the listeners start (icap-server.ts) restart-only
 *
 * Policy lists (services.*.lists) are not here: the loader reads them, and their entries travel in
 * the configuration itself.
 *
 * The server and its backends get the copies in two different views, because a backend's settings
 * go into the ISTag (service-registry.ts) and a copy's path must not: the ISTag would then differ
 * from a lone server's with the same configuration, and change on every reload. So the backends
 * are built from a view with their files copied, and the server runs one whose `backends` section
 * is the original (its own files, block pages and TLS, are not in the ISTag by path).
 */
import type { BackendConfig, Config } from '../config/index.js';

/** Original absolute path → the path of its copy. Plain data: it travels over IPC (messages.ts). */
export type FileCopies = Readonly<Record<string, string>>;

type Rename = (file: string) => string;

/** `config` with the files its server reads (block pages, TLS) renamed by `restartOnly`/`reloaded`. */
function serverFiles(config: Config, reloaded: Rename, restartOnly: Rename): Config {
  const tls = config.server.tls;
  return {
    ...config,
    server: {
      ...config.server,
      // Read only when enabled: a disabled section's paths are validated but never opened.
      tls: !tls.enabled
        ? tls
        : {
            ...tls,
            ...(tls.cert !== undefined && { cert: restartOnly(tls.cert) }),
            ...(tls.key !== undefined && { key: restartOnly(tls.key) }),
            ...(tls.client_ca !== undefined && { client_ca: restartOnly(tls.client_ca) }),
          },
    },
    services: Object.fromEntries(Object.entries(config.services).map(([name, svc]) => [name, { ...svc, block_page: reloaded(svc.block_page) }])),
  };
}

/** `config` with the files its backends read renamed by `reloaded`. */
function backendFiles(config: Config, reloaded: Rename): Config {
  const renamed = (b: BackendConfig): BackendConfig => {
    if (b.type === 'builtin') return { ...b, hash_lists: b.hash_lists.map(reloaded) };
    if (b.type === 'icap' && b.tls.ca_file !== '') return { ...b, tls: { ...b.tls, ca_file: reloaded(b.tls.ca_file) } };
    return b;
  };
  return { ...config, backends: Object.fromEntries(Object.entries(config.backends).map(([name, b]) => [name, renamed(b)])) };
}

/** Every file `config` names that a server reads: those a reload reads again, and those read at start only. */
export function namedFiles(config: Config): { readonly reloaded: string[]; readonly restartOnly: string[] } {
  const reloaded = new Set<string>();
  const restartOnly = new Set<string>();
  const into = (set: Set<string>): Rename => (file) => (set.add(file), file);
  serverFiles(config, into(reloaded), into(restartOnly));
  backendFiles(config, into(reloaded));
  return { reloaded: [...reloaded], restartOnly: [...restartOnly] };
}

/** What a server runs (`server`) and builds its backends from (`backends`), each reading `copies`. */
export function readingCopies(config: Config, copies: FileCopies): { readonly server: Config; readonly backends: Config } {
  const copy: Rename = (file) => {
    const path = copies[file];
    // The primary copies every file namedFiles() lists, or rejects the configuration.
    if (path === undefined) throw new Error(`no copy of ${JSON.stringify(file)} came with the configuration`);
    return path;
  };
  return { server: serverFiles(config, copy, copy), backends: backendFiles(config, copy) };
}
