/**
 * A configuration naming every kind of file a server reads (config-files.ts), each a file of its
 * own in a temp directory. Of their contents only the lists' are parsed when the configuration
 * loads (a hash list's lines included), so placeholders do for the certificate, key and CAs.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../src/config/index.js';

export interface FileConfig {
  readonly dir: string;
  readonly config: Config;
  /** Absolute path of each file, by role. */
  readonly files: {
    blockPage: string;
    hashes: string;
    upstreamCa: string;
    cert: string;
    key: string;
    clientCa: string;
    denyUrls: string;
  };
}

export function configNamingEveryFile(options: { tls?: boolean } = {}): FileConfig {
  const dir = mkdtempSync(join(tmpdir(), 'icap-bridge-files-'));
  const file = (name: string, text: string, mode?: number): string => {
    const path = join(dir, name);
    writeFileSync(path, text, mode === undefined ? {} : { mode });
    return path;
  };
  const files = {
    blockPage: file('block.html', '<p>blocked {{threats}}</p>\n'),
    hashes: file('deny.sha256', `${'a'.repeat(64)} Test.Threat\n`),
    upstreamCa: file('upstream-ca.pem', 'upstream CA\n'),
    cert: file('server.crt', 'certificate\n'),
    key: file('server.key', 'secret key\n', 0o600),
    clientCa: file('client-ca.pem', 'client CA\n'),
    denyUrls: file('deny.urls', 'http://bad.example/\n'),
  };
  const text = `server:
  listen: [{ host: 127.0.0.1, port: 1344 }]
  processes: 2
  tls:
    enabled: ${options.tls ?? true}
    listen: [{ host: 127.0.0.1, port: 11344 }]
    cert: server.crt
    key: server.key
    client_ca: client-ca.pem
spool:
  directory: ${dir}
backends:
  builtin: { type: builtin, hash_lists: [deny.sha256] }
  upstream:
    type: icap
    endpoints: ['icap://127.0.0.1:1/avscan']
    tls: { ca_file: upstream-ca.pem }
services:
  respmod:
    methods: [RESPMOD]
    backends: [builtin]
    block_page: block.html
    lists: { deny_urls: [deny.urls] }
  reqmod:
    methods: [REQMOD]
    backends: [upstream]
`;
  return { dir, config: parseConfig(text, join(dir, 'icap-bridge.yaml'), {}), files };
}
