/**
 * Rules that relate one part of the file to another. They run on a config whose every field is
 * already valid (the schema pass succeeded), so they can trust the types.
 */
import { formatKeyPath, type ConfigProblem } from './errors.js';

/** The parts these rules read; structural so it accepts the schema's output before freezing. */
interface CrossFieldInput {
  readonly server: {
    readonly listen: readonly { readonly host: string; readonly port: number }[];
    readonly tls: { readonly enabled: boolean; readonly cert?: string | undefined; readonly key?: string | undefined };
  };
  readonly backends: Readonly<Record<string, unknown>>;
  readonly services: Readonly<
    Record<
      string,
      {
        readonly aliases: readonly string[];
        readonly backends: readonly string[];
        readonly rules?: readonly { readonly name: string; readonly backends?: readonly string[] | undefined }[] | undefined;
      }
    >
  >;
}

export function checkCrossFieldRules(config: CrossFieldInput): ConfigProblem[] {
  return [...checkBackendReferences(config), ...checkServicePaths(config), ...checkListeners(config), ...checkTls(config)];
}

/** An enabled TLS listener needs its certificate and key. */
function checkTls(config: CrossFieldInput): ConfigProblem[] {
  const tls = config.server.tls;
  if (!tls.enabled) return [];
  const problems: ConfigProblem[] = [];
  if (tls.cert === undefined) problems.push({ path: 'server.tls.cert', rule: 'required when server.tls.enabled is true' });
  if (tls.key === undefined) problems.push({ path: 'server.tls.key', rule: 'required when server.tls.enabled is true' });
  return problems;
}

/** Every backend a service or one of its rules names must be defined under `backends`. */
function checkBackendReferences(config: CrossFieldInput): ConfigProblem[] {
  const defined = Object.keys(config.backends);
  const list = defined.length === 0 ? 'none' : defined.join(', ');
  const problems: ConfigProblem[] = [];
  const check = (backend: string, keyPath: PropertyKey[], where = '') => {
    if (!Object.hasOwn(config.backends, backend)) {
      problems.push({ path: formatKeyPath(keyPath), rule: `unknown backend ${JSON.stringify(backend)}${where} (defined: ${list})` });
    }
  };
  for (const [service, settings] of Object.entries(config.services)) {
    settings.backends.forEach((backend, i) => check(backend, ['services', service, 'backends', i]));
    settings.rules?.forEach((rule, r) => {
      rule.backends?.forEach((backend, i) => check(backend, ['services', service, 'rules', r, 'backends', i], ` in rule ${JSON.stringify(rule.name)}`));
    });
  }
  return problems;
}

/**
 * Service names and aliases are all paths one router matches case-insensitively, so no two may be
 * equal ignoring case, or a request would have two possible services.
 */
function checkServicePaths(config: CrossFieldInput): ConfigProblem[] {
  const owners = new Map<string, string>(); // lower-cased path → description of its first owner
  const problems: ConfigProblem[] = [];
  const claim = (path: string, keyPath: PropertyKey[], owner: string) => {
    const key = path.toLowerCase();
    const previous = owners.get(key);
    if (previous === undefined) owners.set(key, owner);
    else problems.push({ path: formatKeyPath(keyPath), rule: `path "/${path}" is already taken by ${previous} (paths are case-insensitive)` });
  };
  // Names first, so a clash between a name and an alias is always reported at the alias.
  for (const service of Object.keys(config.services)) claim(service, ['services', service], `service ${service}`);
  for (const [service, settings] of Object.entries(config.services)) {
    settings.aliases.forEach((alias, i) => claim(alias, ['services', service, 'aliases', i], `an alias of service ${service}`));
  }
  return problems;
}

/** Two listeners on the same fixed address would fail at bind time; say so now, with the key. */
function checkListeners(config: CrossFieldInput): ConfigProblem[] {
  const seen = new Map<string, number>();
  const problems: ConfigProblem[] = [];
  config.server.listen.forEach(({ host, port }, i) => {
    if (port === 0) return; // ephemeral ports never clash
    const key = `${host.toLowerCase()}|${port}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else problems.push({ path: `server.listen[${i}]`, rule: `duplicates server.listen[${first}] (${host} port ${port})` });
  });
  return problems;
}
