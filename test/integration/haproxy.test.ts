/**
 * Debian's HAProxy (package haproxy) in front of two icap-bridge processes, configured by
 * config/examples/haproxy.cfg with only the addresses, the stats socket path and the check
 * interval substituted. Traffic (OPTIONS, clean RESPMOD, EICAR RESPMOD) goes through HAProxy;
 * one instance is stopped with SIGTERM; HAProxy must mark it DOWN (its stats socket says so)
 * and every answer before, during and after must be right. scripts/test-all.sh installs
 * haproxy; if it is missing this file fails loudly rather than skipping.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../helpers/child-server.js';
import { HAPROXY, HAPROXY_EXAMPLE, startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { TestClient } from '../helpers/icap-client.js';
import { buildRequest, EICAR, httpRequestHead, httpResponseHead } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const BACKEND = 'icap_bridges';
/** Check interval for the test; the example's `fall` stays as written. */
const TEST_INTER_MS = 200;

let a: ChildServer;
let b: ChildServer;
let haproxy: Haproxy;
let frontPort: number;
let statsSocket: string;

/** `show stat` on the admin socket → server name → its CSV fields (status: UP, DOWN, "UP 1/2"...). */
async function showStat(): Promise<Map<string, Record<string, string>>> {
  const csv = await new Promise<string>((resolve, reject) => {
    const s = connect({ path: statsSocket });
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('stats socket: no answer within 2 s'));
    }, 2000);
    s.on('connect', () => s.write('show stat\n'));
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  const [header, ...rows] = csv.trim().split('\n');
  const cols = header!.replace(/^# /, '').split(',');
  const at = (name: string): number => cols.indexOf(name);
  const servers = new Map<string, Record<string, string>>();
  for (const row of rows) {
    const f = row.split(',');
    if (f[at('pxname')] !== BACKEND || f[at('svname')] === 'BACKEND') continue;
    const fields = Object.fromEntries(cols.map((c, i) => [c, f[i] ?? '']));
    // HAProxy prefixes check_status with "* " while a check is running; the result is the rest.
    fields.check_status = (fields.check_status ?? '').replace(/^\* /, '');
    servers.set(f[at('svname')]!, fields);
  }
  return servers;
}

async function serverStates(): Promise<Map<string, string>> {
  return new Map([...(await showStat())].map(([name, fields]) => [name, fields.status!]));
}

async function waitForStates(want: Record<string, RegExp>, timeoutMs: number): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  let last = new Map<string, string>();
  for (;;) {
    last = await serverStates();
    if (Object.entries(want).every(([name, re]) => re.test(last.get(name) ?? ''))) return last;
    if (Date.now() > deadline) throw new Error(`HAProxy states ${JSON.stringify([...last])}, wanted ${Object.entries(want).map(([n, re]) => `${n} ${re}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Kind = 'options' | 'clean' | 'eicar';
/**
 * right: the expected answer. wrong: any other answer (a clean body blocked, EICAR let through,
 * an error status, a partial answer). unanswered: the connection closed before a single byte of
 * an answer came back, which a client sees as a failed transaction, never as a verdict.
 */
type Outcome = 'right' | 'wrong' | 'unanswered';
interface Exchange {
  kind: Kind;
  url: string;
  outcome: Outcome;
  detail: string;
  startedAt: number;
}

let seq = 0;
/** One ICAP transaction on a new connection through HAProxy, checked for the right answer. */
async function exchange(kind: Kind): Promise<Exchange> {
  const url = `http://example.com/haproxy/${kind}-${++seq}`;
  const startedAt = Date.now();
  const result = (right: boolean, detail: string): Exchange => ({ kind, url, outcome: right ? 'right' : 'wrong', detail, startedAt });
  let c: TestClient | undefined;
  try {
    c = await TestClient.connect(frontPort);
    if (kind === 'options') {
      c.write(buildRequest({ method: 'OPTIONS' }).first);
      const r = await c.read();
      return result(r.status === 200 && r.header('methods') === 'RESPMOD' && /^"IB-/.test(r.header('istag') ?? ''), `${r.status} ${r.header('methods')}`);
    }
    const body = kind === 'eicar' ? EICAR : Buffer.from(`clean body ${seq}\n`);
    c.write(
      buildRequest({
        reqHdr: httpRequestHead(url),
        resHdr: httpResponseHead(body.length),
        headers: [['Allow', '204']],
        body: [body],
      }).first,
    );
    const r = await c.read();
    if (kind === 'clean') return result(r.status === 204, String(r.status));
    const blocked =
      r.status === 200 &&
      (r.resHdr ?? '').startsWith('HTTP/1.1 403') &&
      (r.header('x-infection-found') ?? '').includes('Threat=EICAR-Test-File');
    return result(blocked, `${r.status} ${(r.resHdr ?? '').split('\r\n')[0]}`);
  } catch (err) {
    const message = (err as Error).message;
    const nothing = c !== undefined && c.closed && c.pending.length === 0;
    return { kind, url, outcome: nothing ? 'unanswered' : 'wrong', detail: message, startedAt };
  } finally {
    c?.close();
  }
}

const notRight = (xs: Exchange[]): Exchange[] => xs.filter((e) => e.outcome !== 'right');

async function rounds(n: number): Promise<Exchange[]> {
  const out: Exchange[] = [];
  for (let i = 0; i < n; i++) for (const kind of ['options', 'clean', 'eicar'] as const) out.push(await exchange(kind));
  return out;
}

function served(srv: ChildServer, exchanges: Exchange[]): number {
  const urls = new Set(srv.accessRecords().map((r) => r.url));
  return exchanges.filter((e) => urls.has(e.url)).length;
}

beforeAll(async () => {
  a = await startChildServer();
  b = await startChildServer();
  haproxy = await startHaproxy(a.port, b.port, TEST_INTER_MS);
  frontPort = haproxy.frontPort;
  statsSocket = haproxy.statsSocket;
});

afterAll(async () => {
  await haproxy?.stop();
  await a?.stop();
  await b?.stop();
});

describe('HAProxy with config/examples/haproxy.cfg', () => {
  it('the example itself is valid for this HAProxy (haproxy -c)', async () => {
    const r = await run(HAPROXY, ['-c', '-f', HAPROXY_EXAMPLE]);
    expect(r.stdout).toContain('Configuration file is valid');
  });

  it('marks both instances UP through the ICAP OPTIONS health check', async () => {
    // Servers start as "UP 1/2" (assumed up, not yet confirmed); a passing check makes them "UP".
    const states = await waitForStates({ icap1: /^UP$/, icap2: /^UP$/ }, 10_000);
    expect([...states]).toEqual([
      ['icap1', 'UP'],
      ['icap2', 'UP'],
    ]);
    // L7OK: the last check got past `tcp-check expect string "ICAP/1.0 200"`, an application-level
    // success, not just an open port (that would be L4OK).
    const stat = await showStat();
    for (const name of ['icap1', 'icap2']) expect(stat.get(name)?.check_status, name).toBe('L7OK');
  });

  it('balances OPTIONS, clean and EICAR transactions over both, every answer right', async () => {
    const exchanges = await rounds(10);
    expect(notRight(exchanges)).toEqual([]);
    const respmod = exchanges.filter((e) => e.kind !== 'options');
    // Access lines are written in batches (flushed within 25 ms): wait until both logs hold them all.
    await waitFor('an access line for every transaction', () => served(a, respmod) + served(b, respmod) >= respmod.length, { timeoutMs: 3000 }).catch(() => {});
    const onA = served(a, respmod);
    const onB = served(b, respmod);
    expect(onA + onB).toBe(respmod.length);
    expect(onA).toBeGreaterThan(0);
    expect(onB).toBeGreaterThan(0);
  });

  it('an instance stopped with SIGTERM goes DOWN; traffic continues on the other, nothing answered wrongly', async () => {
    // Traffic keeps flowing while the instance stops and until HAProxy has noticed.
    let flowing = true;
    const during: Exchange[] = [];
    const traffic = (async () => {
      for (let i = 0; i < 300 && flowing; i++) for (const kind of ['clean', 'eicar'] as const) during.push(await exchange(kind));
    })();
    await new Promise((r) => setTimeout(r, 100));

    const stopAt = Date.now();
    expect(await a.stop('SIGTERM')).toBe(0);
    const exitedAt = Date.now();
    const states = await waitForStates({ icap1: /^DOWN/, icap2: /^UP$/ }, 10_000);
    const downAt = Date.now();
    flowing = false;
    await traffic;
    expect(states.get('icap1')).toMatch(/^DOWN/);
    expect((await showStat()).get('icap1')?.check_status).toBe('L4CON'); // connection refused
    expect(haproxy.output()).toMatch(/Server icap_bridges\/icap1 is DOWN/);

    const unanswered = during.filter((e) => e.outcome === 'unanswered');
    console.log(
      `icap1: SIGTERM → exit ${exitedAt - stopAt} ms, exit → DOWN ${downAt - exitedAt} ms; ` +
        `${during.length} transactions meanwhile, ${unanswered.length} unanswered (connection closed, no bytes)`,
    );
    // Never a wrong verdict. A connection HAProxy handed to icap1 in the instant it stopped may
    // be closed unanswered (icap-bridge closes connections that have not sent a request yet when
    // it shuts down); only those that started before icap1 exited, and only a few.
    expect(during.filter((e) => e.outcome === 'wrong')).toEqual([]);
    for (const e of unanswered) expect(e.startedAt).toBeLessThanOrEqual(exitedAt);
    expect(unanswered.length).toBeLessThanOrEqual(3);
    expect(during.filter((e) => e.outcome === 'right').length).toBeGreaterThan(0);

    // Once DOWN: everything goes to icap2, all of it right.
    const after = await rounds(10);
    expect(notRight(after)).toEqual([]);
    const respmod = after.filter((e) => e.kind !== 'options');
    await b.recordFor(respmod.at(-1)!.url, 3000);
    expect(served(b, respmod)).toBe(respmod.length);
  });
});
