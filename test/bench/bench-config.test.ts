/**
 * bench/icap-bridge.bench.yaml as bench/lib/bridge-process.ts renders it: a config the server accepts
 * for either access-line layout, and for JSON one that leaves logging.access_log_format out, so a
 * build from before that key (bench/ab-builds.ts's base) accepts it too.
 */
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ACCESS_LOG_FORMATS, renderBenchConfig } from '../../bench/lib/bridge-process.js';
import { parseConfig } from '../../src/config/index.js';

const OPTIONS = { port: 1344, processes: 1, clamdEndpoint: '/run/clamd.sock', streamMaxBytes: 1_048_576, builtinWorkers: 0 } as const;

describe('renderBenchConfig', () => {
  it.each(ACCESS_LOG_FORMATS)('%s: fills every placeholder, and the server accepts the result', (accessLogFormat) => {
    // The spool must be a writable directory that exists: the system's temp directory is one.
    const text = renderBenchConfig({ ...OPTIONS, accessLogFormat, clamdTransfer: 'path' }, tmpdir());
    expect(text).not.toMatch(/@[A-Z_]+@/);
    const config = parseConfig(text, '/tmp/icap-bridge.bench.yaml');
    expect(config.logging.access_log_format).toBe(accessLogFormat);
    expect(config.backends.clamav).toMatchObject({ transfer: 'path', endpoints: ['/run/clamd.sock'] });
  });

  it('leaves access_log_format out for json (the default), names it for squid, and defaults to squid', () => {
    expect(renderBenchConfig({ ...OPTIONS, accessLogFormat: 'json' }, '/tmp/spool')).not.toMatch(/^\s*access_log_format:/m);
    expect(renderBenchConfig({ ...OPTIONS, accessLogFormat: 'squid' }, '/tmp/spool')).toMatch(/^ {2}access_log_format: squid$/m);
    expect(renderBenchConfig(OPTIONS, '/tmp/spool')).toMatch(/^ {2}access_log_format: squid$/m);
  });
});
