import { describe, expect, it } from 'vitest';
import { ClamdEndpoint } from '../../src/backends/clamd/clamd-endpoint.js';
import { deriveVersion, VERSION_UNKNOWN } from '../../src/backends/clamd/health.js';

function endpoint(id: string, version: string | null, refused = false): { target: { id: string }; resource: ClamdEndpoint } {
  const resource = new ClamdEndpoint({ kind: 'tcp', host: '127.0.0.1', port: 3310, label: id });
  resource.version = version;
  resource.versionRefused = refused;
  return { target: { id }, resource };
}

describe('deriveVersion (the clamd part of the ISTag)', () => {
  it('names the first healthy endpoint that answered VERSION, in configured order', () => {
    const endpoints = [endpoint('a', 'ClamAV 1.4.6/1/x'), endpoint('b', 'ClamAV 1.4.6/2/y')];
    expect(deriveVersion(endpoints, () => true, true)).toBe('clamd ClamAV 1.4.6/1/x');
    expect(deriveVersion(endpoints, (id) => id === 'b', true)).toBe('clamd ClamAV 1.4.6/2/y');
    expect(deriveVersion(endpoints, () => false, true)).toBeNull();
  });

  it('follows a new reply (new signatures change the ISTag) and gives the same string while it stays', () => {
    const e = endpoint('a', 'ClamAV 1.4.6/27001/Sat');
    const first = deriveVersion([e], () => true, true);
    expect(deriveVersion([e], () => true, true)).toBe(first);
    e.resource.version = 'ClamAV 1.4.6/27002/Sun';
    expect(deriveVersion([e], () => true, true)).toBe('clamd ClamAV 1.4.6/27002/Sun');
    // Back to an earlier reply (another endpoint, another backend): never a stale label.
    e.resource.version = 'ClamAV 1.4.6/27001/Sat';
    expect(deriveVersion([e], () => true, true)).toBe('clamd ClamAV 1.4.6/27001/Sat');
  });

  it('is "unknown" when VERSION is off or refused', () => {
    expect(deriveVersion([endpoint('a', 'ClamAV 1')], () => true, false)).toBe(VERSION_UNKNOWN);
    expect(deriveVersion([endpoint('a', null, true), endpoint('b', 'ClamAV 1')], () => true, true)).toBe(VERSION_UNKNOWN);
  });
});
