/**
 * Per-service policy over real sockets: rules choose backends, allow or block without a scan
 * (inside the preview when they can), allow/deny lists by host, URL and hash, the failure matrix,
 * and a reload that re-reads a list file.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResult, ScanErrorKind, StreamingScan } from '../../src/backends/backend.js';
import { parseConfig } from '../../src/config/index.js';
import { buildRequest, EICAR } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { exchangeOnConnection, type WireRequest } from '../helpers/icap-exchange.js';
import type { ParsedResponse } from '../helpers/icap-response.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/** A scripted engine: counts its scans, says infected when the body holds BAD, or fails as told. */
class FakeBackend implements Backend {
  readonly version = 'fake/1';
  scans = 0;
  streamsOpened = 0;
  streamAborts: string[] = [];
  streamed: Buffer[] = [];
  constructor(
    readonly name: string,
    readonly opts: { fail?: ScanErrorKind; delayMs?: number; streaming?: boolean } = {},
  ) {
    if (opts.streaming) this.openStream = this.#openStream;
  }

  openStream?: (meta: unknown, signal: AbortSignal) => StreamingScan;

  async scan(body: { createReadStream(): NodeJS.ReadableStream }): Promise<BackendResult> {
    this.scans++;
    const chunks: Buffer[] = [];
    for await (const c of body.createReadStream() as AsyncIterable<Buffer>) chunks.push(c);
    return this.#verdict(Buffer.concat(chunks));
  }

  async #verdict(data: Buffer): Promise<BackendResult> {
    if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    if (this.opts.fail) return { outcome: 'error', backend: this.name, kind: this.opts.fail, message: 'simulated', durationMs: 1 };
    if (data.includes('BAD')) return { outcome: 'infected', backend: this.name, threats: [`Fake.${this.name}`], durationMs: 1 };
    return { outcome: 'clean', backend: this.name, durationMs: 1 };
  }

  #openStream = (): StreamingScan => {
    this.streamsOpened++;
    const chunks: Buffer[] = [];
    this.streamed = chunks;
    return {
      write: (chunk) => {
        chunks.push(Buffer.from(chunk));
        return true;
      },
      onDrain: (listener) => listener(),
      end: () => {
        this.scans++;
        return this.#verdict(Buffer.concat(chunks));
      },
      abort: (reason) => this.streamAborts.push(reason),
    };
  };

  status() {
    return [{ endpoint: 'fake', healthy: true, inFlight: 0, queued: 0 }];
  }

  async close(): Promise<void> {}
}

const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-rules-'));
function listFile(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, `# test list\n${lines.join('\n')}\n`);
  return path;
}
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const reqHdr = (host: string, path = '/file.bin', method = 'GET'): string => `${method} http://${host}${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
const resHdr = (extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n${extra}\r\n`;

const exchange = (srv: TestServer, req: WireRequest, client?: TestClient): ReturnType<typeof exchangeOnConnection> =>
  exchangeOnConnection(srv.port, req, client);
const decision = (r: ParsedResponse): string | undefined => r.header('X-ICAP-Bridge-Decision');

describe('rules', () => {
  const main = new FakeBackend('main');
  const deep = new FakeBackend('deep', { streaming: true });
  const slow = new FakeBackend('slow', { fail: 'timeout', delayMs: 20 });
  const down = new FakeBackend('down', { fail: 'unreachable' });
  let srv: TestServer;

  beforeAll(async () => {
    const yaml = `backends:
  main: { type: builtin }
  deep: { type: builtin }
  slow: { type: builtin }
  down: { type: builtin }
services:
  respmod:
    methods: [RESPMOD, REQMOD]
    backends: [main]
    rules:
      - name: trusted
        match: { host: [trusted.example] }
        action: allow
      - name: no-fragments
        match: { host: [ranges.example], partial: true }
        action: block
      - name: office-users
        match: { user: [alice], host: [office.example] }
        action: allow
      - name: no-executables
        match: { file_type: [exe, elf] }
        action: block
      - name: archives
        match: { file_type: [zip] }
        backends: [deep, main]
      - name: slow-allowed
        match: { host: [slow.example] }
        backends: [slow, down]
        on_error: { timeout: allow, unreachable: allow }
      - name: slow-timeout-only
        match: { host: [slow2.example] }
        backends: [slow, down]
        on_error: { timeout: allow }
      - name: small
        match: { max_size: 100 }
        action: allow
`;
    srv = await startTestServer(yaml, {
      backends: new Map<string, Backend>([
        ['main', main],
        ['deep', deep],
        ['slow', slow],
        ['down', down],
      ]),
    });
  });
  afterAll(() => srv.close());

  it('an allow rule answers 204 inside the preview, never calls a backend, and the connection carries on', async () => {
    const before = main.scans + deep.scans;
    const body = Buffer.alloc(5000, 'x');
    const req = buildRequest({ reqHdr: reqHdr('trusted.example'), resHdr: resHdr(), body: [body], preview: 1024 });
    const record = srv.nextRecord();
    const { responses, client } = await exchange(srv, req);
    expect(responses.map((r) => r.status)).toEqual([204]); // no 100 Continue: the rest was never asked for
    expect(decision(responses[0]!)).toBe('allow; reason=rule; rule=trusted');
    expect(await record).toMatchObject({ rule: 'trusted', action: 'allow', verdict: 'rule-allowed', reason: 'rule', icap_status: 204, body_bytes: 1024, scans: [] });
    expect(main.scans + deep.scans).toBe(before);
    // The same connection serves the next request normally.
    const next = await exchange(srv, buildRequest({ reqHdr: reqHdr('other.example'), body: [Buffer.alloc(300, 'y')], headers: [['Allow', '204']] }), client);
    expect(next.responses.map((r) => r.status)).toEqual([204]);
    expect(decision(next.responses[0]!)).toBe('allow; reason=clean');
    client.close();
  });

  it('an allow rule without a preview reads the body and answers as unchanged (echo without Allow: 204)', async () => {
    const req = buildRequest({ reqHdr: reqHdr('trusted.example'), resHdr: resHdr(), body: ['BAD but trusted'] });
    const { responses, client } = await exchange(srv, req);
    expect(responses[0]!.status).toBe(200);
    expect(responses[0]!.body?.toString()).toBe('BAD but trusted');
    expect(decision(responses[0]!)).toBe('allow; reason=rule; rule=trusted');
    client.close();
  });

  it('a block rule by file type answers the block page at the end of the preview', async () => {
    const before = main.scans;
    const exe = Buffer.concat([Buffer.from('MZ\x90\x00', 'latin1'), Buffer.alloc(4000, 1)]);
    const record = srv.nextRecord();
    const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr('x.example'), body: [exe], preview: 1024 }));
    const r = responses[0]!;
    expect(responses.map((x) => x.status)).toEqual([200]);
    expect(r.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.body?.toString()).toContain('blocked by policy rule no-executables');
    expect(r.header('X-Infection-Found')).toBeUndefined();
    expect(decision(r)).toBe('block; reason=rule; rule=no-executables');
    expect(await record).toMatchObject({ rule: 'no-executables', action: 'block', verdict: 'rule-blocked', http_status: 403 });
    expect(main.scans).toBe(before);
    client.close();
  });

  describe('partial: a 206 range (a piece of a file, never scanned whole)', () => {
    const range206 = (contentRange: string): string =>
      `HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Range: ${contentRange}\r\n\r\n`;

    it('a block rule on partial answers the block page at the end of the preview, without a scan', async () => {
      const before = main.scans;
      const record = srv.nextRecord();
      const req = buildRequest({ reqHdr: reqHdr('ranges.example'), resHdr: range206('bytes 4000-8999/9000'), body: [Buffer.alloc(5000, 'r')], preview: 1024 });
      const { responses, client } = await exchange(srv, req);
      expect(responses.map((x) => x.status)).toEqual([200]);
      expect(responses[0]!.resHdr).toMatch(/^HTTP\/1\.1 403 Forbidden/);
      expect(decision(responses[0]!)).toBe('block; reason=rule; rule=no-fragments');
      expect(await record).toMatchObject({ rule: 'no-fragments', verdict: 'rule-blocked', partial: 'bytes 4000-8999/9000', body_bytes: 1024 });
      expect(main.scans).toBe(before);
      client.close();
    });

    it('a 206 that is the whole file (Range: bytes=0-) is scanned as any download', async () => {
      const record = srv.nextRecord();
      const req = buildRequest({ reqHdr: reqHdr('ranges.example'), resHdr: range206('bytes 0-4999/5000'), body: [Buffer.alloc(5000, 'w')], headers: [['Allow', '204']] });
      const { responses, client } = await exchange(srv, req);
      expect(responses[0]!.status).toBe(204);
      expect(decision(responses[0]!)).toBe('allow; reason=clean');
      const rec = await record;
      expect(rec.partial).toBeUndefined();
      expect(rec).toMatchObject({ verdict: 'clean', scans: [{ backend: 'main', outcome: 'clean' }] });
      client.close();
    });

    it('without a rule a piece is scanned as it is, and the access log names its range', async () => {
      const record = srv.nextRecord();
      const req = buildRequest({ reqHdr: reqHdr('x.example'), resHdr: range206('bytes 0-199/9000'), body: [Buffer.alloc(200, 'p')], headers: [['Allow', '204']] });
      const { responses, client } = await exchange(srv, req);
      expect(responses[0]!.status).toBe(204);
      expect(await record).toMatchObject({ verdict: 'clean', partial: 'bytes 0-199/9000', scans: [{ backend: 'main', outcome: 'clean' }] });
      client.close();
    });

    it('/metrics counts the pieces by verdict', async () => {
      const text = await srv.server.metrics.registry.getSingleMetricAsString('icap_bridge_partial_bodies_total');
      expect(text).toContain('icap_bridge_partial_bodies_total{service="respmod",verdict="rule-blocked"} 1');
      expect(text).toContain('icap_bridge_partial_bodies_total{service="respmod",verdict="clean"} 1');
    });
  });

  it('a rule chooses its backends; a streaming one opened after the first bytes still gets every byte', async () => {
    const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(200_000, 7)]);
    const mainBefore = main.scans;
    const record = srv.nextRecord();
    // The first chunk is shorter than the magic sniff: the rule can only be chosen on the second.
    const req = buildRequest({ reqHdr: reqHdr('x.example'), body: [zip.subarray(0, 3), zip.subarray(3)], headers: [['Allow', '204']] });
    const { responses, client } = await exchange(srv, req);
    expect(responses[0]!.status).toBe(204);
    expect(decision(responses[0]!)).toBe('allow; reason=clean; rule=archives');
    expect(Buffer.concat(deep.streamed).equals(zip)).toBe(true);
    expect(main.scans).toBe(mainBefore + 1);
    const rec = await record;
    expect(rec).toMatchObject({ rule: 'archives', action: 'scan' });
    expect(rec.scans.map((s) => s.backend).sort()).toEqual(['deep', 'main']);
    client.close();
  });

  it('no rule matched: the service backends and on_error, no rule named', async () => {
    const record = srv.nextRecord();
    const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr('x.example'), body: [Buffer.alloc(500, 'z')], headers: [['Allow', '204']] }));
    expect(decision(responses[0]!)).toBe('allow; reason=clean');
    const rec = await record;
    expect(rec.rule).toBeUndefined();
    expect(rec).toMatchObject({ action: 'scan', scans: [{ backend: 'main', outcome: 'clean' }] });
    client.close();
  });

  it('matches the user decoded from base64 and logs it', async () => {
    const record = srv.nextRecord();
    const req = buildRequest({ reqHdr: reqHdr('office.example'), body: ['BAD'], headers: [['Allow', '204'], ['X-Client-Username', b64('alice')]] });
    const { responses, client } = await exchange(srv, req);
    expect(decision(responses[0]!)).toBe('allow; reason=rule; rule=office-users');
    expect(await record).toMatchObject({ rule: 'office-users', user: 'alice', x_client_username: b64('alice') });
    client.close();
  });

  it('a size rule uses the real size, whatever Content-Length declared', async () => {
    // Declared 50 bytes (the `small` allow rule), sent 5000 with BAD in them: scanned, and blocked.
    const req = buildRequest({ reqHdr: reqHdr('x.example'), resHdr: resHdr('Content-Length: 50\r\n'), body: [Buffer.concat([Buffer.alloc(4997, 'q'), Buffer.from('BAD')])], preview: 1024 });
    const { responses, client } = await exchange(srv, req);
    expect(responses.map((r) => r.status)).toEqual([100, 200]); // not settled in the preview: size is provisional
    expect(decision(responses[1]!)).toBe('block; reason=infected');
    const honest = await exchange(srv, buildRequest({ reqHdr: reqHdr('x.example'), resHdr: resHdr('Content-Length: 3\r\n'), body: ['BAD'], headers: [['Allow', '204']] }), client);
    expect(decision(honest.responses[0]!)).toBe('allow; reason=rule; rule=small');
    client.close();
  });

  describe('failure matrix (a backend that times out, one unreachable)', () => {
    it('every kind allowed → allowed, each error stated with its decision', async () => {
      const record = srv.nextRecord();
      const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr('slow.example'), body: [Buffer.alloc(200, 'a')], headers: [['Allow', '204']] }));
      expect(responses[0]!.status).toBe(204);
      expect(decision(responses[0]!)).toBe('allow; reason=error-policy; errors=slow:timeout:allow,down:unreachable:allow; rule=slow-allowed');
      expect(await record).toMatchObject({
        verdict: 'error-allowed',
        rule: 'slow-allowed',
        scan_errors: ['slow:timeout', 'down:unreachable'],
        error_decisions: [
          { backend: 'slow', kind: 'timeout', decision: 'allow' },
          { backend: 'down', kind: 'unreachable', decision: 'allow' },
        ],
      });
      client.close();
    });

    it('a kind the matrix leaves out blocks', async () => {
      const record = srv.nextRecord();
      const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr('slow2.example'), body: [Buffer.alloc(200, 'a')], headers: [['Allow', '204']] }));
      expect(responses[0]!.resHdr).toMatch(/^HTTP\/1\.1 403/);
      expect(decision(responses[0]!)).toBe('block; reason=error-policy; errors=slow:timeout:allow,down:unreachable:block; rule=slow-timeout-only');
      expect(await record).toMatchObject({
        verdict: 'error-blocked',
        error_decisions: [
          { backend: 'slow', kind: 'timeout', decision: 'allow' },
          { backend: 'down', kind: 'unreachable', decision: 'block' },
        ],
      });
      client.close();
    });
  });
});

describe('lists', () => {
  const engine = new FakeBackend('builtin', { streaming: true });
  const GOOD = Buffer.from('BAD, but a known good file');
  const EVIL = Buffer.from('looks clean, hash is known bad');
  let srv: TestServer;
  let denyHosts: string;
  let yaml: string;

  beforeAll(async () => {
    denyHosts = listFile('deny.hosts', ['evil.example', '*.phish.example']);
    yaml = `services:
  respmod:
    methods: [RESPMOD, REQMOD]
    lists:
      deny_hosts: [${denyHosts}]
      allow_hosts: [${listFile('allow.hosts', ['partner.example'])}]
      deny_urls: [${listFile('deny.urls', ['http://files.example/warez/', '*.scr'])}]
      allow_urls: [${listFile('allow.urls', ['http://updates.example/signed/'])}]
      deny_sha256: [${listFile('deny.sha256', [sha256(EVIL)])}]
      allow_sha256: [${listFile('allow.sha256', [`${sha256(GOOD)}  known good`])}]
`;
    srv = await startTestServer(yaml, { backends: new Map([['builtin', engine]]) });
  });
  afterAll(() => srv.close());

  const rows: [label: string, host: string, path: string, body: Buffer, header: string, verdict: string, list?: string][] = [
    ['deny_hosts', 'evil.example', '/x', Buffer.from('clean'), 'block; reason=deny-list; list=deny_hosts', 'deny-listed', 'deny_hosts'],
    ['deny_hosts glob', 'www.phish.example', '/x', Buffer.from('clean'), 'block; reason=deny-list; list=deny_hosts', 'deny-listed', 'deny_hosts'],
    ['deny_urls prefix', 'files.example', '/warez/a.zip', Buffer.from('clean'), 'block; reason=deny-list; list=deny_urls', 'deny-listed', 'deny_urls'],
    ['deny_urls glob', 'x.example', '/saver.scr', Buffer.from('clean'), 'block; reason=deny-list; list=deny_urls', 'deny-listed', 'deny_urls'],
    ['deny_sha256', 'x.example', '/x', EVIL, 'block; reason=deny-list; list=deny_sha256', 'deny-listed', 'deny_sha256'],
    ['allow_hosts', 'partner.example', '/x', Buffer.from('BAD'), 'allow; reason=allow-list; list=allow_hosts', 'allow-listed', 'allow_hosts'],
    ['allow_urls', 'updates.example', '/signed/kb.msu', Buffer.from('BAD'), 'allow; reason=allow-list; list=allow_urls', 'allow-listed', 'allow_urls'],
    ['allow_sha256', 'x.example', '/x', GOOD, 'allow; reason=allow-list; list=allow_sha256', 'allow-listed', 'allow_sha256'],
    ['deny hash beats an allowed host', 'partner.example', '/x', EVIL, 'block; reason=deny-list; list=deny_sha256', 'deny-listed', 'deny_sha256'],
    ['on no list: scanned', 'x.example', '/x', Buffer.from('BAD'), 'block; reason=infected', 'infected'],
  ];
  it.each(rows)('%s', async (_label, host, path, body, header, verdict, list) => {
    const record = srv.nextRecord();
    const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr(host, path), body: [body], headers: [['Allow', '204']] }));
    const r = responses[0]!;
    expect(decision(r)).toBe(header);
    if (header.startsWith('block')) expect(r.resHdr).toMatch(/^HTTP\/1\.1 403/);
    else expect(r.status).toBe(204);
    const rec = await record;
    expect(rec.verdict).toBe(verdict);
    if (list !== undefined) expect(rec.list).toBe(list);
    client.close();
  });

  it('an allow hash aborts the scan already streaming and never takes its verdict', async () => {
    const aborts = engine.streamAborts.length;
    const scans = engine.scans;
    const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr('x.example'), body: [GOOD], headers: [['Allow', '204']] }));
    expect(responses[0]!.status).toBe(204);
    expect(engine.streamAborts.slice(aborts)).toEqual(['allow_sha256 entry']);
    expect(engine.scans).toBe(scans);
    client.close();
  });

  it('with hash lists, an allowed host still reads the whole body (a deny hash could follow)', async () => {
    const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr('partner.example'), body: [Buffer.alloc(3000, 'p')], preview: 1024 }));
    expect(responses.map((r) => r.status)).toEqual([100, 200]);
    client.close();
  });

  it('a deny host blocks at the end of the preview, and a REQMOD without a body too', async () => {
    const a = await exchange(srv, buildRequest({ reqHdr: reqHdr('evil.example'), body: [Buffer.alloc(3000, 'e')], preview: 1024 }));
    expect(a.responses.map((r) => r.status)).toEqual([200]);
    expect(a.responses[0]!.body?.toString()).toContain('on the deny list deny_hosts');
    const b = await exchange(srv, buildRequest({ method: 'REQMOD', service: 'respmod', reqHdr: reqHdr('evil.example') }), a.client);
    expect(b.responses[0]!.resHdr).toMatch(/^HTTP\/1\.1 403/);
    expect(decision(b.responses[0]!)).toBe('block; reason=deny-list; list=deny_hosts');
    a.client.close();
  });

  it('a reload re-reads a changed list file', async () => {
    const before = srv.server.istags()['respmod'];
    const get = async () => {
      const { responses, client } = await exchange(srv, buildRequest({ reqHdr: reqHdr('new-threat.example'), body: ['clean'], headers: [['Allow', '204']] }));
      client.close();
      return decision(responses[0]!);
    };
    expect(await get()).toBe('allow; reason=clean');
    listFile('deny.hosts', ['evil.example', '*.phish.example', 'new-threat.example']);
    const config = parseConfig(yaml, srv.config.source);
    srv.server.reload(config, new Map([['builtin', engine]]));
    expect(await get()).toBe('block; reason=deny-list; list=deny_hosts');
    // The lists decide verdicts, so the ISTag moves with them.
    expect(srv.server.istags()['respmod']).not.toBe(before);
  });

  it('EICAR through the real embedded engine is still blocked when no list says otherwise', async () => {
    const s = await startTestServer(`services:\n  respmod:\n    methods: [RESPMOD]\n    lists:\n      deny_hosts: [${denyHosts}]\n`);
    try {
      const { responses, client } = await exchange(s, buildRequest({ body: [EICAR], headers: [['Allow', '204']] }));
      expect(decision(responses[0]!)).toBe('block; reason=infected');
      client.close();
    } finally {
      await s.close();
    }
  });
});
