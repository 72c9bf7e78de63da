/** The configuration module: read once at start (and on SIGHUP), validated completely, frozen, passed down. */
export { ConfigError, type ConfigProblem } from './errors.js';
export { loadConfigFile, parseConfig } from './load.js';
export { defaultConfigPath } from './paths.js';
export type { BackendConfig, Config, ServiceConfig } from './schema.js';
