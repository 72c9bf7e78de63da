/** ICAPS: the TLS listener with openssl s_client and node's TLS client, and mutual TLS. */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest, EICAR } from '../helpers/icap-messages.js';
import { parseResponse } from '../helpers/icap-response.js';
import { freePort, startChildServer, type ChildServer } from '../helpers/child-server.js';
import { makeTestCerts, type TestCerts } from '../helpers/tls-certs.js';

let certs: TestCerts;
beforeAll(() => {
  certs = makeTestCerts();
});

async function tlsExchange(port: number, request: Buffer, client?: { cert: string; key: string }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(certs.caCert),
      ...(client && { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
    });
    let buf = Buffer.alloc(0);
    socket.on('secureConnect', () => socket.write(request));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (parseResponse(buf)) {
        socket.end();
        resolve(buf);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(buf));
    socket.setTimeout(10_000, () => reject(new Error('timeout')));
  });
}

describe('icaps listener', () => {
  let srv: ChildServer;
  let tlsPort: number;
  beforeAll(async () => {
    tlsPort = await freePort();
    srv = await startChildServer('', `  tls:\n    enabled: true\n    listen: [{ host: 127.0.0.1, port: ${tlsPort} }]\n    cert: ${certs.serverCert}\n    key: ${certs.serverKey}\n`);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('answers OPTIONS through openssl s_client', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-CAfile', certs.caCert, '-verify_return_error', '-quiet'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let text = '';
      p.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n')) p.kill('SIGTERM');
      });
      p.on('exit', () => resolve(text));
      p.on('error', reject);
      p.stdin.write(buildRequest({ method: 'OPTIONS' }).first);
      setTimeout(() => p.kill('SIGKILL'), 10_000).unref();
    });
    expect(out).toMatch(/^ICAP\/1\.0 200 OK\r\n/);
    expect(out).toContain('Methods: RESPMOD');
  });

  it('blocks EICAR over TLS and still serves plain ICAP on its own port', async () => {
    const r = parseResponse(await tlsExchange(tlsPort, buildRequest({ body: [EICAR] }).first))!;
    expect(r.header('X-Infection-Found')).toContain('EICAR-Test-File');
    const plain = await new Promise<string>((resolve, reject) => {
      execFile('c-icap-client', ['-i', '127.0.0.1', '-p', String(srv.port), '-s', 'respmod'], (err, stdout, stderr) => (err ? reject(err) : resolve(stdout + stderr)));
    });
    expect(plain).toContain('Allow 204: Yes');
  });
});

describe('mutual TLS (server.tls.client_ca)', () => {
  let srv: ChildServer;
  let tlsPort: number;
  beforeAll(async () => {
    tlsPort = await freePort();
    srv = await startChildServer(
      '',
      `  tls:\n    enabled: true\n    listen: [{ host: 127.0.0.1, port: ${tlsPort} }]\n    cert: ${certs.serverCert}\n    key: ${certs.serverKey}\n    client_ca: ${certs.caCert}\n`,
    );
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('accepts a client certificate signed by the CA', async () => {
    const r = parseResponse(await tlsExchange(tlsPort, buildRequest({ method: 'OPTIONS' }).first, { cert: certs.clientCert, key: certs.clientKey }));
    expect(r?.status).toBe(200);
  });

  it('refuses a client without a certificate', async () => {
    const result = await tlsExchange(tlsPort, buildRequest({ method: 'OPTIONS' }).first).then(
      (buf) => (parseResponse(buf) ? 'answered' : 'closed'),
      () => 'error',
    );
    expect(result).not.toBe('answered');
  });
});
