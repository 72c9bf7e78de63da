/**
 * The access line is written by hand (access-log.ts) for speed; it must stay the line pino writes
 * for `logger.info({ access: record }, 'access')`, with the same bindings, order and escaping.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeAccessLog, type AccessRecord } from '../../src/observability/access-log.js';
import { createLogger } from '../../src/observability/logger.js';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter((l) => l !== ''));
      done();
    },
  });
  return { lines, stream };
}

const RECORD: AccessRecord = {
  transaction_id: 'ab12-1',
  client: '127.0.0.1',
  method: 'RESPMOD',
  service: 'respmod',
  icap_status: 200,
  http_status: 403,
  bytes_in: 4400,
  bytes_out: 1234,
  preview: null,
  body_bytes: 4096,
  verdict: 'infected',
  threats: ['Eicar "quoted" \\ name\u2028'],
  scan_errors: [],
  reason: 'infected',
  duration_ms: 0.4,
  url: 'http://example.com/ünïcode?a=1&b="2"',
  scans: [{ backend: 'builtin', endpoint: 'inline', outcome: 'infected', ms: 0 }],
  cache: 'miss',
  x_client_username: undefined as unknown as string, // absent keys are left out by both
};

/** The time differs between the two calls; everything else must be identical, in the same order. */
const withoutTime = (line: string): string => line.replace(/"time":"[^"]+"/, '"time":"T"');

describe('access line', () => {
  it('is the line pino writes, for a root logger and a child with bindings', async () => {
    for (const bindings of [null, { pid: 4242, worker: 2 }]) {
      const { lines, stream } = capture();
      const root = createLogger({ level: 'info', destination: stream });
      const logger = bindings === null ? root : root.child(bindings);
      logger.info({ access: RECORD }, 'access');
      writeAccessLog(logger, RECORD, true);
      await new Promise((r) => setImmediate(r));
      expect(lines).toHaveLength(2);
      expect(withoutTime(lines[1]!)).toBe(withoutTime(lines[0]!));
      expect(JSON.parse(lines[1]!)).toMatchObject({ level: 30, service: 'icap-bridge', msg: 'access', access: { threats: RECORD.threats } });
      expect(JSON.parse(lines[1]!).time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
  });

  it('writes nothing when access logging is off or the level is above info', async () => {
    const { lines, stream } = capture();
    writeAccessLog(createLogger({ level: 'info', destination: stream }), RECORD, false);
    writeAccessLog(createLogger({ level: 'warn', destination: stream }), RECORD, true);
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual([]);
  });
});
