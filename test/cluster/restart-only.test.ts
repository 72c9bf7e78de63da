/**
 * The restart-only warnings a lone server and a cluster primary share (src/cluster/restart-only.ts):
 * one line per kind of change, none when nothing a restart applies changed.
 */
import { describe, expect, it } from 'vitest';
import { warnIfListenersChanged, warnIfProcessesChanged } from '../../src/cluster/restart-only.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import type { Logger } from '../../src/observability/logger.js';

const load = (server: string): Config => parseConfig(`server:\n${server}`, '/etc/icap-bridge/icap-bridge.yaml', {});

function recorder(): { logger: Logger; lines: unknown[][] } {
  const lines: unknown[][] = [];
  return { logger: { warn: (...args: unknown[]) => lines.push(args) } as unknown as Logger, lines };
}

describe('restart-only warnings', () => {
  const started = load('  listen: [{ host: 127.0.0.1, port: 1344 }]\n  processes: 2\n');

  it('warns of a listener change and of a processes change, each once', () => {
    const next = load('  listen: [{ host: 127.0.0.1, port: 1345 }]\n  processes: 3\n');
    const { logger, lines } = recorder();
    warnIfListenersChanged(logger, started, next);
    warnIfProcessesChanged(logger, started, next);
    expect(lines).toEqual([
      ['listener or admin addresses changed: they take effect on restart, not on reload'],
      [{ processes: 3 }, 'server.processes changed: it takes effect on restart, not on reload'],
    ]);
  });

  it('says nothing when neither changed (other settings may)', () => {
    const next = load('  listen: [{ host: 127.0.0.1, port: 1344 }]\n  processes: 2\n  max_connections: 10\n');
    const { logger, lines } = recorder();
    warnIfListenersChanged(logger, started, next);
    warnIfProcessesChanged(logger, started, next);
    expect(lines).toEqual([]);
  });
});
