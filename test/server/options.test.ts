/** OPTIONS per service (RFC 3507 §4.10.2), routing by path and alias, ISTag derivation (§4.7). */
import type { Backend } from '../../src/backends/backend.js';
import { createBackends } from '../../src/backends/create-backends.js';
import { parseConfig } from '../../src/config/index.js';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildRequest } from '../helpers/icap-messages.js';
import { TestClient } from '../helpers/icap-client.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const options = (service: string): Buffer => buildRequest({ method: 'OPTIONS', service }).first;

describe('OPTIONS', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.close());

  it('answers with every header a client needs', async () => {
    const c = await TestClient.connect(srv.port);
    c.write(options('respmod'));
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.header('Methods')).toBe('RESPMOD');
    expect(r.header('Service')).toMatch(/^icap-bridge\/\d+\.\d+\.\d+ respmod$/);
    expect(r.header('ISTag')).toMatch(/^"[A-Za-z0-9_-]{1,32}"$/);
    expect(r.header('Max-Connections')).toBe('512');
    expect(r.header('Options-TTL')).toBe('3600');
    expect(r.header('Allow')).toBe('204');
    expect(r.header('Preview')).toBe('1024');
    expect(r.header('Transfer-Preview')).toBe('*');
    expect(r.header('Encapsulated')).toBe('null-body=0');
    expect(Date.parse(r.header('Date')!)).not.toBeNaN();
    c.close();
  });

  it.each([
    ['reqmod', 'REQMOD'],
    ['OMSScanReq-AV', 'REQMOD'],
    ['OMSScanResp-AV', 'RESPMOD'],
    ['avscan', 'REQMOD, RESPMOD'],
    ['virus_scan', 'REQMOD, RESPMOD'],
    ['squidclamav', 'REQMOD, RESPMOD'],
    ['srv_clamav', 'REQMOD, RESPMOD'],
  ])('routes /%s to a service with Methods %s', async (path, methods) => {
    const c = await TestClient.connect(srv.port);
    c.write(options(path));
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.header('Methods')).toBe(methods);
    c.close();
  });

  it('logs an access line whose bytes_out is the answer\'s length', async () => {
    const socket = connect(srv.port, '127.0.0.1');
    socket.write(options('respmod'));
    let answer = Buffer.alloc(0);
    // An OPTIONS answer is a head only (Encapsulated: null-body=0): it ends at the first blank line.
    for await (const chunk of socket) {
      answer = Buffer.concat([answer, chunk as Buffer]);
      if (answer.includes('\r\n\r\n')) break;
    }
    socket.destroy();
    const access = (): Record<string, unknown> | undefined =>
      srv.logs.map((l) => l.access as Record<string, unknown> | undefined).find((a) => a?.method === 'OPTIONS');
    const record = await vi.waitUntil(access, { timeout: 2000 });
    expect(record).toMatchObject({ icap_status: 200, reason: 'options', bytes_out: answer.length });
    expect(answer.length).toBeGreaterThan(100);
  });

  it('serves several OPTIONS on one persistent connection', async () => {
    const c = await TestClient.connect(srv.port);
    for (let i = 0; i < 5; i++) {
      c.write(options('respmod'));
      expect((await c.read()).status).toBe(200);
    }
    expect(c.closed).toBe(false);
    c.close();
  });
});

describe('ISTag', () => {
  async function istagOf(yaml: string, service = 'respmod'): Promise<string> {
    const srv = await startTestServer(yaml);
    try {
      const c = await TestClient.connect(srv.port);
      c.write(options(service));
      const tag = (await c.read()).header('ISTag')!;
      c.close();
      return tag;
    } finally {
      await srv.close();
    }
  }

  it('is identical on two nodes with the same configuration', async () => {
    expect(await istagOf('')).toBe(await istagOf(''));
  });

  it('does not depend on the listen address (a node-local setting)', async () => {
    const other = 'server:\n  listen: [{ host: 127.0.0.1, port: 0 }]\n  max_connections: 100\n';
    expect(await istagOf(other)).toBe(await istagOf(''));
  });

  it('changes when something that changes verdicts changes', async () => {
    const base = await istagOf('');
    const allow = await istagOf('services:\n  respmod:\n    methods: [RESPMOD]\n    on_error: allow\n');
    const noEicar = await istagOf('backends:\n  builtin:\n    type: builtin\n    eicar: false\n');
    expect(new Set([base, allow, noEicar]).size).toBe(3);
  });

  it('follows an engine version change live, without a reload (a signature update)', async () => {
    let version = 'engine 1.0/27001';
    const engine: Backend = {
      name: 'builtin',
      get version() {
        return version;
      },
      scan: () => Promise.resolve({ outcome: 'clean', backend: 'builtin', durationMs: 0 }),
      status: () => [],
      close: () => Promise.resolve(),
    };
    const srv = await startTestServer('', { backends: new Map([['builtin', engine]]) });
    try {
      const tagNow = async (): Promise<string> => {
        const c = await TestClient.connect(srv.port);
        c.write(options('respmod'));
        const tag = (await c.read()).header('ISTag')!;
        c.close();
        return tag;
      };
      const before = await tagNow();
      expect(await tagNow()).toBe(before);
      version = 'engine 1.0/27002';
      const after = await tagNow();
      expect(after).not.toBe(before);
      expect(srv.server.istags()['respmod']).toBe(after);
      version = 'engine 1.0/27001';
      expect(await tagNow()).toBe(before);
    } finally {
      await srv.close();
    }
  });
});


/**
 * RFC 3507 §4.7: the ISTag validates earlier answers, so it changes when the answer to the same
 * message could differ, and only then (service-registry.ts, TRANSPORT_ONLY_KEYS): a new tag makes
 * Squid drop what it stored.
 */
describe('ISTag across a reload', () => {
  const SERVICE = 'services:\n  respmod:\n    methods: [RESPMOD]\n';
  const BACKENDS = 'backends:\n  builtin:\n    type: builtin\n  strict:\n    type: builtin\n    eicar: false\n';
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer(BACKENDS + SERVICE);
  });
  afterAll(() => srv.close());

  /** Reloads with the service's settings plus `extra` (indented under it); the OPTIONS answer after it. */
  async function reloadWith(extra: string): Promise<{ istag: string; options: (name: string) => string | undefined }> {
    const text = `server:\n  listen: [{ host: 127.0.0.1, port: 0 }]\nspool:\n  directory: ${srv.spoolDir}\n${BACKENDS}${SERVICE}${extra}`;
    const config = parseConfig(text, srv.config.source);
    srv.server.reload(config, await createBackends(config));
    const c = await TestClient.connect(srv.port);
    c.write(options('respmod'));
    const r = await c.read();
    c.close();
    expect(r.header('ISTag')).toBe(srv.server.istags()['respmod']);
    return { istag: r.header('ISTag')!, options: (name) => r.header(name) };
  }

  it('stays when only settings that change how answers are exchanged change', async () => {
    const before = (await reloadWith('')).istag;
    const after = await reloadWith(
      [
        '    options_ttl_s: 60',
        '    preview_bytes: 0',
        '    allow_204: false',
        '    allow_206: true',
        '    trickle: { enabled: true, min_body_bytes: 1024 }',
        '    commit_on_idle: { enabled: false }',
        '    cut_after_commit: close',
        '',
      ].join('\n'),
    );
    expect(after.istag).toBe(before);
    // The OPTIONS answer shows the new settings at once, though its ISTag is the same.
    expect(after.options('Options-TTL')).toBe('60');
    expect(after.options('Preview')).toBe('0');
    expect(after.options('Allow')).toBe('206');
  });

  it.each([
    ['on_error', '    on_error: allow\n'],
    ['backends', '    backends: [strict]\n'],
    ['content_decoding', '    content_decoding: { enabled: false }\n'],
    ['multipart', '    multipart: { max_parts: 5 }\n'],
  ])('changes when %s changes', async (_key, extra) => {
    const before = (await reloadWith('')).istag;
    expect((await reloadWith(extra)).istag).not.toBe(before);
    expect((await reloadWith('')).istag).toBe(before);
  });
});
