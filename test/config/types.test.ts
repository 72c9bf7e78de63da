/** The Config type is inferred from the schema; these checks run under `tsc` (and trivially under vitest). */
import { describe, expectTypeOf, it } from 'vitest';
import type { BackendConfig, Config, ServiceConfig } from '../../src/config/index.js';

describe('Config type', () => {
  it('mirrors the YAML keys and their value types', () => {
    expectTypeOf<Config['source']>().toEqualTypeOf<string>();
    expectTypeOf<Config['server']['limits']['body_bytes']>().toEqualTypeOf<number>();
    expectTypeOf<Config['server']['listen'][number]>().toEqualTypeOf<{ readonly host: string; readonly port: number }>();
    expectTypeOf<Config['logging']['level']>().toEqualTypeOf<'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'>();
    expectTypeOf<ServiceConfig['methods']>().toEqualTypeOf<readonly ('REQMOD' | 'RESPMOD')[]>();
    expectTypeOf<ServiceConfig['on_error']>().toEqualTypeOf<'block' | 'allow'>();
    expectTypeOf<BackendConfig['type']>().toEqualTypeOf<'builtin' | 'clamd' | 'metadefender' | 'icap'>();
    expectTypeOf<Extract<BackendConfig, { type: 'builtin' }>['hash_lists']>().toEqualTypeOf<readonly string[]>();
  });

  it('is read-only all the way down', () => {
    const mutate = (config: Config, service: ServiceConfig) => {
      // @ts-expect-error frozen
      config.server.max_connections = 1;
      // @ts-expect-error frozen
      service.aliases.push('x');
    };
    expectTypeOf(mutate).toBeFunction();
  });
});
