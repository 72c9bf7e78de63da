/**
 * An error answer sent mid-transaction (408 body timeout, 400 bad chunk, 413 body too large) is
 * that transaction's answer: its access record carries the status and the bytes sent, the
 * transactions metric counts it under that status, and protocol_errors_total (requests rejected
 * before any transaction ran) does not count it a second time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { metricValue } from '../helpers/metrics-text.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer(`server:
  listen: [{ host: 127.0.0.1, port: 0 }]
  timeouts: { header_ms: 300, body_idle_ms: 300 }
  limits: { body_bytes: 4096 }
`);
});
afterAll(() => srv.close());

const metric = (name: string): Promise<string> => srv.server.metrics.registry.getSingleMetricAsString(name);

/** The request's head and the first `size` bytes of a body, as one chunk (no last chunk). */
function headAndChunk(size: number): Buffer {
  const whole = buildRequest({ body: [Buffer.alloc(size, 'a')], headers: [['Allow', '204']] }).first;
  return whole.subarray(0, whole.length - '\r\n0\r\n\r\n'.length);
}

describe('an error answer that ends a transaction', () => {
  it.each([
    // Allow: 204 keeps "commit on idle" (an early 200 for a silent RESPMOD) out of the way.
    ['a body silent for body_idle_ms', 408, 'aborted', 'body-timeout', headAndChunk(100)],
    ['a chunk size that is not hex', 400, 'aborted', 'protocol-error', Buffer.concat([headAndChunk(100), b('\r\nzz\r\n')])],
    ['a body over limits.body_bytes', 413, 'aborted', 'protocol-error', headAndChunk(8192)],
  ])('%s: answered %i, and the record says so', async (_name, status, verdict, reason, bytes) => {
    const before = metricValue(await metric('icap_bridge_transactions_total'), 'icap_bridge_transactions_total', { status: String(status), verdict }) ?? 0;
    const c = await TestClient.connect(srv.port);
    const record = srv.nextRecord();
    c.write(bytes);
    const answer = await c.read(3000);
    expect(answer.status).toBe(status);
    await c.waitClosed(3000);
    expect(await record).toMatchObject({ icap_status: status, http_status: null, verdict, reason, bytes_out: answer.length });

    const transactions = await metric('icap_bridge_transactions_total');
    expect(metricValue(transactions, 'icap_bridge_transactions_total', { status: String(status), verdict })).toBe(before + 1);
    expect(metricValue(transactions, 'icap_bridge_transactions_total', { status: '0' })).toBeUndefined();
    // Its help: "Requests answered with an ICAP error status before any transaction ran."
    expect(metricValue(await metric('icap_bridge_protocol_errors_total'), 'icap_bridge_protocol_errors_total', { status: String(status) })).toBeUndefined();
  });

  it('a request rejected before any transaction ran is a protocol error, with no access record', async () => {
    const recordsBefore = srv.records.length;
    const c = await TestClient.connect(srv.port);
    c.write(b('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nHost: x\r\n')); // the head never completes
    expect((await c.read(3000)).status).toBe(408);
    await c.waitClosed(3000);
    expect(metricValue(await metric('icap_bridge_protocol_errors_total'), 'icap_bridge_protocol_errors_total', { status: '408' })).toBe(1);
    expect(srv.records.length).toBe(recordsBefore);
  });
});
