/**
 * Non-ASCII bytes in the heads, sent as raw UTF-8 over a real socket: the access line (JSON and
 * Squid layout) and the block page show what the client sent, each byte encoded once. The codec
 * decodes heads as latin1, so a writer that took its strings for text wrote `cafÃ©` and
 * `caf%C3%83%C2%A9` (protocol/head-text.ts).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBackends } from '../../src/backends/create-backends.js';
import { parseConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { createIcapServer, type IcapServer } from '../../src/server/icap-server.js';
import { exchange } from '../helpers/icap-exchange.js';
import { TestClient } from '../helpers/icap-client.js';
import { EICAR, buildRequest, httpRequestHead, type RequestSpec } from '../helpers/icap-messages.js';
import { waitFor } from '../helpers/wait.js';

/** `text` as UTF-8 bytes in a latin1 string: buildRequest sends each character as one byte. */
const utf8Bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

let server: IcapServer | null = null;

afterEach(async () => {
  await server?.close(1000);
  server = null;
});

/** A server on port 0 whose log lines are kept as written (the access line in `format`). */
async function start(format: 'json' | 'squid'): Promise<{ port: number; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-non-ascii-'));
  const yaml = `server:\n  listen: [{ host: 127.0.0.1, port: 0 }]\nspool:\n  directory: ${dir}\nlogging:\n  access_log_format: ${format}\n`;
  const config = parseConfig(yaml, join(dir, 'icap-bridge.yaml'));
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => lines.push(line) } });
  server = createIcapServer(config, { logger, backends: await createBackends(config) });
  const [address] = await server.listen();
  return { port: address!.port, lines };
}

/** RESPMOD of EICAR from `http://example.com/café` for user `jörg müller`, both as raw UTF-8 bytes. */
const request = (): RequestSpec => ({
  reqHdr: httpRequestHead(utf8Bytes('http://example.com/café')),
  headers: [['X-Client-Username', utf8Bytes('jörg müller')]],
  body: [EICAR],
});

describe('non-ASCII bytes in the heads', () => {
  it('JSON access line: the URL and user name as the UTF-8 text sent; the block page shows the URL once encoded', async () => {
    const { port, lines } = await start('json');
    const answer = await exchange(port, request());
    const page = answer.body!.toString('utf8');
    expect(page).toContain('http://example.com/café');
    expect(page).not.toContain('cafÃ©');
    const line = await waitFor('the access line', () => lines.find((l) => l.includes('"msg":"access"')));
    const access = (JSON.parse(line) as { access: Record<string, unknown> }).access;
    expect(access).toMatchObject({ url: 'http://example.com/café', x_client_username: 'jörg müller', user: 'jörg müller', verdict: 'infected' });
  });

  it('Squid access line: the bytes sent, each %-encoded once', async () => {
    const { port, lines } = await start('squid');
    await exchange(port, request());
    const line = await waitFor('the access line', () => lines.find((l) => l.includes(' RESPMOD ')));
    const fields = line.trimEnd().split(/ +/);
    expect(fields).toHaveLength(10);
    expect(fields[6]).toBe('http://example.com/caf%C3%A9');
    expect(fields[7]).toBe('j%C3%B6rg%20m%C3%BCller');
  });

  it.each([
    ['valid UTF-8 as its text', utf8Bytes('café'), 'café'],
    ['bytes that are not UTF-8 as %XX', 'caf\xe9', 'caf%E9'],
  ])('the "unknown service" line writes the service %s', async (_label, service, logged) => {
    const { port, lines } = await start('json');
    const c = await TestClient.connect(port);
    try {
      c.write(buildRequest({ method: 'OPTIONS', service }).first);
      expect((await c.read()).status).toBe(404);
    } finally {
      c.close();
    }
    const line = await waitFor('the unknown service line', () => lines.find((l) => l.includes('"msg":"unknown service"')));
    expect(JSON.parse(line)).toMatchObject({ method: 'OPTIONS', service: logged });
  });
});
