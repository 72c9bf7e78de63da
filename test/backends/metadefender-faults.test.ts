/**
 * The failures specs/metadefender-core-api.md describes, produced by the emulator on demand
 * (faults.status500Rate, status502Rate, status429Rate, uploadResetRate, unknownDataIdRate), and
 * what the adapter makes of each: never clean for content that was not scanned; a backend error,
 * or a retry where the spec calls for one (§2: 503, and 429 like it; §9: a lost job is
 * resubmitted), bounded in count and in time; no pool slot held and no temp file left behind.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, ScanMeta } from '../../src/backends/backend.js';
import { EICAR_SIGNATURE } from '../../src/backends/builtin/eicar.js';
import { retryAfterMsOf } from '../../src/backends/metadefender/core-endpoint.js';
import type { MetaDefenderBackendOptions } from '../../src/backends/metadefender/metadefender-backend.js';
import { liveSpoolFiles } from '../../src/pipeline/spool.js';
import { resolveOptions, type EmulatorOptions } from '../../emulators/metadefender/config.js';
import { startEmulator, type EmulatorHandle, type RequestLogEntry } from '../../emulators/metadefender/emulator.js';
import { createTestMetaDefender, scriptedCore, timedScan as timedScanFor, type PollScript, type ScriptedCore } from '../helpers/metadefender-backend.js';
import { waitFor } from '../helpers/wait.js';

const META: ScanMeta = { transactionId: 'faults-1', method: 'RESPMOD', clientAddress: '127.0.0.1', url: 'http://origin.example/a.txt' };
const CLEAN = Buffer.from('harmless text\n');
/** Large enough that the client is still sending when the emulator resets the upload halfway. */
const LARGE = Buffer.alloc(8 * 1024 * 1024, 0x61);
const TIMEOUT_MS = 2_000;

let dir: string;
let emulators: EmulatorHandle[] = [];
let backends: Backend[] = [];
let scripted: ScriptedCore[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-md-faults-'));
});

afterEach(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await Promise.all(emulators.map((e) => e.close()));
  await Promise.all(scripted.map((c) => c.close()));
  backends = [];
  emulators = [];
  scripted = [];
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function emulator(options: EmulatorOptions = {}): Promise<EmulatorHandle> {
  const em = await startEmulator({ scanDurationMs: 20, ...options });
  emulators.push(em);
  return em;
}

async function backendFor(ems: readonly EmulatorHandle[], overrides: Partial<MetaDefenderBackendOptions> = {}): Promise<Backend> {
  const b = await createTestMetaDefender(ems.map((e) => e.url), dir, TIMEOUT_MS, { ...overrides });
  backends.push(b);
  return b;
}

/** The scan's result and how long it took; bounded, so a hang fails the test instead of stalling it. */
function timedScan(b: Backend, body: Buffer): ReturnType<typeof timedScanFor> {
  return timedScanFor(b, body, META, TIMEOUT_MS * 3);
}

function requests(em: EmulatorHandle, route: RequestLogEntry['route']): RequestLogEntry[] {
  return em.stats.requests.filter((r) => r.route === route);
}

function liveUnder(path: string): string[] {
  return [...liveSpoolFiles()].filter((p) => p.startsWith(path));
}


describe('the emulator produces the failures', () => {
  it('500 {"err"}, 502 (HTML, a balancer) and 429 {"err"} on submit and on poll, per route', async () => {
    for (const [key, status, type] of [
      ['status500Rate', 500, 'application/json'],
      ['status502Rate', 502, 'text/html'],
      ['status429Rate', 429, 'application/json'],
    ] as const) {
      const em = await emulator({ faults: { [key]: { submit: 1 } } });
      const submit = await request(`${em.url}/file`, { method: 'POST', body: 'x' });
      expect(submit.statusCode, key).toBe(status);
      expect(submit.headers['content-type'], key).toMatch(type);
      // §2 names no Retry-After for 429 (nor for 503): none is invented.
      expect(submit.headers['retry-after'], key).toBeUndefined();
      const text = await submit.body.text();
      if (status !== 502) expect(JSON.parse(text), key).toEqual({ err: expect.any(String) });
      expect(em.stats.acceptedIds, key).toHaveLength(0);

      // Only the route named: the poll still answers, until the poll route is named too.
      em.configure({ faults: { [key]: { poll: 1 } } });
      const accepted = (await (await request(`${em.url}/file`, { method: 'POST', body: 'x' })).body.json()) as { data_id: string };
      const poll = await request(`${em.url}/file/${accepted.data_id}`);
      expect(poll.statusCode, key).toBe(status);
      await poll.body.dump();
    }
    expect(() => resolveOptions({ faults: { status500Rate: 2 } })).toThrow(/status500Rate/);
    expect(() => resolveOptions({ faults: { retryAfterSeconds: -1 } })).toThrow(/retryAfterSeconds/);
    expect(() => resolveOptions({ faults: { status429Rate: { upload: 1 } } } as never)).toThrow(/status429Rate/);
  });

  it('retryAfterSeconds: Retry-After on the injected busy answers (503, 429) only', async () => {
    for (const [key, status, retryAfter] of [
      ['status503Rate', 503, '2'],
      ['status429Rate', 429, '2'],
      ['status500Rate', 500, undefined],
    ] as const) {
      const em = await emulator({ faults: { [key]: { poll: 1 }, retryAfterSeconds: 2 } });
      const poll = await request(`${em.url}/file/0123`);
      expect(poll.statusCode, key).toBe(status);
      expect(poll.headers['retry-after'], key).toBe(retryAfter);
      await poll.body.dump();
    }
  });

  it('an upload reset halfway: a TCP reset while the client sends, no answer, nothing accepted', async () => {
    const em = await emulator({ faults: { uploadResetRate: 1 } });
    const failed = await request(`${em.url}/file`, { method: 'POST', body: LARGE, headers: { 'content-length': String(LARGE.length) } }).then(
      () => 'answered',
      (err: { code?: string }) => err.code,
    );
    expect(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE']).toContain(failed);
    expect(requests(em, 'submit')[0]?.status).toBe('reset');
    expect(em.stats.acceptedIds).toHaveLength(0);
  });
});

describe('the adapter under 500, 502 and 429', () => {
  const cases = [
    // §2: 500 is a server error with no advice to retry; 502 is not in the spec at all.
    { key: 'status500Rate', status: 500, kind: 'backend-error', retried: false },
    { key: 'status502Rate', status: 502, kind: 'backend-error', retried: false },
    // §2: "Treat 429 like 503": back off, or fail over to another Core.
    { key: 'status429Rate', status: 429, kind: 'overloaded', retried: true },
  ] as const;

  for (const c of cases) {
    it(`${c.status} on submit: ${c.kind}${c.retried ? ', the other endpoint takes the job' : ', not retried'}; never clean`, async () => {
      const failing = await emulator({ faults: { [c.key]: { submit: 1 } } });
      const alone = await timedScan(await backendFor([failing]), LARGE);
      expect(alone.result).toMatchObject({ outcome: 'error', kind: c.kind, message: expect.stringContaining(`HTTP ${c.status}`) });
      expect(alone.ms).toBeLessThan(TIMEOUT_MS);
      expect(requests(failing, 'poll')).toHaveLength(0);

      const other = await emulator();
      const b = await backendFor([failing, other]);
      const { result } = await timedScan(b, EICAR_SIGNATURE);
      if (c.retried) expect(result).toMatchObject({ outcome: 'infected' });
      else expect(result).toMatchObject({ outcome: 'error', kind: c.kind });
      expect(requests(other, 'submit')).toHaveLength(c.retried ? 1 : 0);
      expect(b.status().every((s) => s.inFlight === 0)).toBe(true);
    });

    it(`${c.status} on every poll: ${c.kind} after a bounded number of polls; never clean`, async () => {
      const em = await emulator({ faults: { [c.key]: { poll: 1 } } });
      const b = await backendFor([em]);
      const { result, ms } = await timedScan(b, CLEAN);
      expect(result).toMatchObject({ outcome: 'error', kind: c.kind, message: expect.stringContaining(`HTTP ${c.status}`) });
      expect(ms).toBeLessThan(TIMEOUT_MS);
      expect(requests(em, 'poll').length).toBeGreaterThan(1);
      expect(requests(em, 'poll').length).toBeLessThanOrEqual(5);
      expect(b.status()).toMatchObject([{ inFlight: 0 }]);
    });

    it(`${c.status} now and then while polling: the job still ends with its real verdict`, async () => {
      const em = await emulator({ scanDurationMs: 60, faults: { [c.key]: { poll: 0.3 }, seed: 7 } });
      const b = await backendFor([em]);
      for (let i = 0; i < 3; i++) {
        const { result } = await timedScan(b, Buffer.concat([Buffer.from(`${i} `), EICAR_SIGNATURE]));
        // An error is acceptable when three polls in a row failed; clean never is.
        expect(result === 'still pending' ? result : result.outcome).toMatch(/^(infected|error)$/);
      }
    });

    it(`${c.status} on the sanitized download: an error, not the original body, no temp file left`, async () => {
      const em = await emulator({ sanitize: { all: true }, faults: { [c.key]: { converted: 1 } } });
      const b = await backendFor([em], { sanitize: true });
      const { result } = await timedScan(b, LARGE);
      expect(result).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringMatching(/sanitized file not available.*HTTP/) });
      expect(liveUnder(dir)).toEqual([]);
    });
  }
});

describe('a job given up after repeated 429/5xx polls is cancelled on Core (§3 Cancel)', () => {
  for (const key of ['status500Rate', 'status502Rate', 'status429Rate', 'status503Rate'] as const) {
    it(`${key}: the error as before, then POST /file/{data_id}/cancel on the accepting server; the job ends Canceled (19)`, async () => {
      // A long scan: without the cancel Core would still be working on the job for nobody.
      const em = await emulator({ scanDurationMs: 60_000, faults: { [key]: { poll: 1 } } });
      const b = await backendFor([em]);
      const { result } = await timedScan(b, CLEAN);
      expect(result).toMatchObject({ outcome: 'error', message: expect.stringMatching(/polling got HTTP \d+ 3 times/) });
      const [dataId] = em.stats.acceptedIds;
      await expect.poll(() => requests(em, 'cancel').map((r) => [r.id, r.status]), { timeout: 2_000 }).toEqual([[dataId, 200]]);
      // Only the poll route fails: the job itself says it was cancelled.
      em.configure({ faults: {} });
      const poll = await request(`${em.url}/file/${dataId}`);
      expect(((await poll.body.json()) as { scan_results: { scan_all_result_i: number } }).scan_results.scan_all_result_i).toBe(19);
      expect(b.status()).toMatchObject([{ inFlight: 0 }]);
    });
  }
});

describe('Retry-After on a 429 or 503 poll (not in the spec, §2): a floor for the next poll, capped by the deadline', () => {
  it('delay-seconds only (RFC 9110 §10.2.3), in ms', () => {
    expect(retryAfterMsOf('5')).toBe(5_000);
    expect(retryAfterMsOf(' 0 ')).toBe(0);
    expect(retryAfterMsOf('Wed, 21 Oct 2015 07:28:00 GMT')).toBeUndefined();
    expect(retryAfterMsOf('1.5')).toBeUndefined();
    expect(retryAfterMsOf('-1')).toBeUndefined();
    expect(retryAfterMsOf('')).toBeUndefined();
    expect(retryAfterMsOf(undefined)).toBeUndefined();
  });

  for (const [key, status] of [
    ['status429Rate', 429],
    ['status503Rate', 503],
  ] as const) {
    it(`${status} with Retry-After: 1: the next poll waits at least 1 s instead of the 10–20 ms back-off`, async () => {
      const em = await emulator({ scanDurationMs: 60_000, faults: { [key]: { poll: 1 }, retryAfterSeconds: 1 } });
      const b = await backendFor([em], { timeoutMs: 5_000 });
      const { result } = await timedScan(b, CLEAN);
      // Still three answers before giving up, as without the header.
      expect(result).toMatchObject({ outcome: 'error', kind: 'overloaded', message: expect.stringContaining(`HTTP ${status} 3 times`) });
      const at = requests(em, 'poll').map((r) => r.at);
      expect(at).toHaveLength(3);
      // Timers may fire a little early against another clock: 950 ms, not 1000.
      expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
      expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(950);
    });
  }

  it('a Retry-After past the deadline (or past what a timer holds): the next poll waits until the deadline, not longer, not 1 ms', async () => {
    // 10^7 s is 10^10 ms, over setTimeout's 2^31-1: uncapped, Node would fire it after 1 ms.
    const em = await emulator({ scanDurationMs: 60_000, faults: { status429Rate: { poll: 1 }, retryAfterSeconds: 10_000_000 } });
    const b = await backendFor([em], { timeoutMs: 600 });
    const { result, ms } = await timedScan(b, CLEAN);
    expect(result).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(ms).toBeGreaterThanOrEqual(550);
    expect(ms).toBeLessThan(1_100);
    expect(requests(em, 'poll')).toHaveLength(1);
    // The deadline's own cancel.
    await expect.poll(() => requests(em, 'cancel').length, { timeout: 2_000 }).toBe(1);
  });
});

describe('the adapter under an upload reset halfway', () => {
  it('one endpoint: unreachable within the deadline; the other endpoint, when there is one, takes the job', async () => {
    const resetting = await emulator({ faults: { uploadResetRate: 1 } });
    const alone = await backendFor([resetting]);
    const { result, ms } = await timedScan(alone, LARGE);
    expect(result).toMatchObject({ outcome: 'error', kind: 'unreachable' });
    expect(ms).toBeLessThan(TIMEOUT_MS);
    expect(requests(resetting, 'submit').map((r) => r.status)).toEqual(['reset']);
    expect(alone.status()).toMatchObject([{ inFlight: 0 }]);

    const other = await emulator();
    const b = await backendFor([resetting, other]);
    const body = Buffer.concat([LARGE, EICAR_SIGNATURE]);
    expect((await timedScan(b, body)).result).toMatchObject({ outcome: 'infected' });
    expect(requests(other, 'submit')).toHaveLength(1);
    expect(b.status().every((s) => s.inFlight === 0)).toBe(true);
  });
});

describe('a 404 on a poll (§3, §9): the content is uploaded once more', () => {
  it('a node that forgot the job (restarted): resubmitted once, the new data_id polled, the real verdict', async () => {
    const em = await emulator({ scanDurationMs: 300 });
    const b = await backendFor([em]);
    const pending = timedScan(b, EICAR_SIGNATURE);
    await waitFor('the job accepted', () => em.stats.acceptedIds.length === 1, { timeoutMs: 2_000, intervalMs: 2 });
    em.forgetAll();
    const { result } = await pending;
    expect(result).toMatchObject({ outcome: 'infected' });
    const [first, second] = em.stats.acceptedIds;
    expect(em.stats.acceptedIds).toHaveLength(2);
    const polls = requests(em, 'poll');
    expect(polls.some((p) => p.id === first && p.status === 404)).toBe(true);
    // After the resubmission only the new id is asked for, and it gave the verdict.
    const after = polls.slice(polls.findIndex((p) => p.status === 404) + 1);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((p) => p.id === second)).toBe(true);
    // An unknown job and a finished one: nothing to cancel.
    expect(requests(em, 'cancel')).toEqual([]);
  });

  for (const notFoundStatus of [404, 200] as const) {
    it(`a second "Not Found" (HTTP ${notFoundStatus}) is a backend error: exactly two uploads, never clean`, async () => {
      const em = await emulator({ notFoundStatus, faults: { unknownDataIdRate: 1 } });
      const b = await backendFor([em]);
      const { result, ms } = await timedScan(b, CLEAN);
      expect(result).toMatchObject({
        outcome: 'error',
        kind: 'backend-error',
        message: expect.stringMatching(/no longer knows it \(HTTP .*again, after the content was uploaded once more/),
      });
      expect(ms).toBeLessThan(TIMEOUT_MS);
      expect(requests(em, 'submit')).toHaveLength(2);
      expect(requests(em, 'poll').map((p) => p.id)).toEqual(em.stats.acceptedIds);
      expect(b.status()).toMatchObject([{ inFlight: 0 }]);
      // Neither job is known to the server: no cancel is sent for them.
      expect(requests(em, 'cancel')).toEqual([]);
    });
  }

  it('the resubmission is bounded by the scan deadline', async () => {
    const em = await emulator({ scanDurationMs: 50 });
    const b = await backendFor([em], { timeoutMs: 400 });
    const pending = timedScan(b, CLEAN);
    await waitFor('the job accepted', () => em.stats.acceptedIds.length === 1, { timeoutMs: 2_000, intervalMs: 2 });
    // From now on every poll is "Not Found" and every upload waits longer than the scan may.
    em.configure({ faults: { unknownDataIdRate: 1, latencyMs: { submit: 5_000 } } });
    const { result, ms } = await pending;
    expect(result).toMatchObject({ outcome: 'error', kind: 'timeout' });
    expect(ms).toBeLessThan(900);
    expect(requests(em, 'submit')).toHaveLength(2);
  });
});

describe('every other way of giving up a submitted job cancels it on Core too, once (§3 Cancel)', () => {
  /** The cancels the emulator got, as [data_id, status], once they stopped coming for a while. */
  async function settledCancels(em: EmulatorHandle): Promise<[string | undefined, RequestLogEntry['status']][]> {
    await expect.poll(() => requests(em, 'cancel').length, { timeout: 2_000 }).toBeGreaterThan(0);
    // A second cancel would come at once (not awaited, loopback): give it the time to show.
    await new Promise((resolve) => setTimeout(resolve, 150));
    return requests(em, 'cancel').map((r) => [r.id, r.status]);
  }

  async function jobCode(em: EmulatorHandle, dataId: string): Promise<number> {
    em.configure({ faults: {} });
    const poll = await request(`${em.url}/file/${dataId}`);
    return ((await poll.body.json()) as { scan_results: { scan_all_result_i: number } }).scan_results.scan_all_result_i;
  }

  const emulated: { name: string; faults: EmulatorOptions['faults']; timeoutMs?: number; expected: object }[] = [
    { name: 'a poll answer that is not JSON', faults: { malformedJsonRate: { poll: 1 } }, expected: { kind: 'backend-error', message: expect.stringContaining('malformed JSON in poll answer') } },
    // §9: the server counts as lost, the content would go elsewhere; the job may still run there.
    { name: 'every poll dropped (the server lost)', faults: { dropRate: { poll: 1 } }, expected: { kind: 'unreachable', message: expect.stringContaining('polling failed 3 times') } },
    { name: 'the deadline reached while polling', faults: {}, timeoutMs: 300, expected: { kind: 'timeout' } },
  ];
  for (const c of emulated) {
    it(`${c.name}: the error, then one POST /file/{data_id}/cancel; the job ends Canceled (19)`, async () => {
      const em = await emulator({ scanDurationMs: 60_000, faults: c.faults });
      const b = await backendFor([em], c.timeoutMs !== undefined ? { timeoutMs: c.timeoutMs } : {});
      const { result } = await timedScan(b, CLEAN);
      expect(result).toMatchObject({ outcome: 'error', ...c.expected });
      const [dataId] = em.stats.acceptedIds;
      expect(await settledCancels(em)).toEqual([[dataId, 200]]);
      expect(await jobCode(em, dataId!)).toBe(19);
      expect(b.status()).toMatchObject([{ inFlight: 0 }]);
    });
  }

  const answers: { name: string; poll: PollScript; message: RegExp }[] = [
    { name: 'a 200 that is only an {"err"}', poll: { status: 200, json: { err: 'Internal trouble.' } }, message: /job1: Internal trouble/ },
    { name: 'a 200 that is not a result document', poll: { status: 200, json: { something: 'else' } }, message: /not a result/ },
    { name: 'an unexpected status (403)', poll: { status: 403, json: { err: 'Access denied' } }, message: /polling got HTTP 403: Access denied/ },
    { name: 'an unexpected status (400)', poll: { status: 400, json: { err: 'Bad request' } }, message: /polling got HTTP 400/ },
    { name: 'an answer that is not HTTP', poll: { raw: 'NOT HTTP AT ALL\r\n\r\n' }, message: /./ },
  ];
  for (const c of answers) {
    it(`${c.name}: a backend error, then exactly one cancel of the job`, async () => {
      const core = await scriptedCore(c.poll);
      scripted.push(core);
      const b = await createTestMetaDefender([core.url], dir, TIMEOUT_MS);
      backends.push(b);
      const { result, ms } = await timedScan(b, CLEAN);
      expect(result).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringMatching(c.message) });
      expect(ms).toBeLessThan(TIMEOUT_MS);
      expect(core.polls()).toBe(1);
      await expect.poll(() => core.cancels.length, { timeout: 2_000 }).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(core.cancels).toEqual(['/file/job1/cancel']);
    });
  }

  it('an upload answered with a batch_id (an implicit batch, §1): an error, and that batch is cancelled (§7)', async () => {
    const core = await scriptedCore({ status: 200, json: {} }, { batch_id: 'b1' });
    scripted.push(core);
    const b = await createTestMetaDefender([core.url], dir, TIMEOUT_MS);
    backends.push(b);
    const { result } = await timedScan(b, CLEAN);
    expect(result).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringContaining('a batch_id instead of a data_id') });
    await expect.poll(() => core.cancels, { timeout: 2_000 }).toEqual(['/file/batch/b1/cancel']);
  });

  it('close() while a job is polled: its cancel reaches Core before the connections go, once', async () => {
    const em = await emulator({ scanDurationMs: 60_000 });
    const b = await createTestMetaDefender([em.url], dir, TIMEOUT_MS);
    const pending = timedScan(b, CLEAN);
    await waitFor('the job polled', () => requests(em, 'poll').length > 0, { timeoutMs: 2_000, intervalMs: 2 });
    await b.close();
    const [dataId] = em.stats.acceptedIds;
    // close() waited for it.
    expect(requests(em, 'cancel').map((r) => [r.id, r.status])).toEqual([[dataId, 200]]);
    expect((await pending).result).toMatchObject({ outcome: 'error', kind: 'backend-error', message: expect.stringContaining('closed') });
    expect(await settledCancels(em)).toEqual([[dataId, 200]]);
    expect(await jobCode(em, dataId!)).toBe(19);
  });

  it('a job that finished is not cancelled', async () => {
    const em = await emulator();
    const b = await backendFor([em]);
    expect((await timedScan(b, EICAR_SIGNATURE)).result).toMatchObject({ outcome: 'infected' });
    await b.close();
    expect(requests(em, 'cancel')).toEqual([]);
  });
});
