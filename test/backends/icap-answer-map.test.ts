/** The upstream answer → verdict table (src/backends/icap/answer-map.ts), every status and header form. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HeaderList, type HttpHead } from '../../protocol/index.js';
import { EMPTY_SHA256, mapAnswer, type SentMessage, type UpstreamAnswer } from '../../src/backends/icap/answer-map.js';
import { detection, infectionFoundThreat, UPSTREAM_BLOCKED, violationsFound } from '../../src/backends/icap/threat-headers.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const BODY = 'the original body bytes';
const respmod: SentMessage = { method: 'RESPMOD', startLine: 'HTTP/1.1 200 OK', bodyBytes: BODY.length, bodySha256: sha(BODY), complete: true };
const reqmod: SentMessage = { method: 'REQMOD', startLine: 'POST http://example.com/upload HTTP/1.1', bodyBytes: BODY.length, bodySha256: sha(BODY), complete: true };

function head(section: 'req-hdr' | 'res-hdr', startLine: string): HttpHead {
  return { section, startLine, raw: Buffer.from(`${startLine}\r\n\r\n`), headers: new HeaderList([]) };
}

/** An answer from its ICAP header lines (folded lines kept), heads and body. */
function answer(status: number, lines: string[] = [], httpHeads: HttpHead[] = [], body: string | null = null): UpstreamAnswer {
  const raw = `ICAP/1.0 ${status} X\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
  const fields: { name: string; value: string }[] = [];
  for (const line of lines) {
    if (line.startsWith('\t') || line.startsWith(' ')) {
      const last = fields.pop()!;
      fields.push({ name: last.name, value: `${last.value} ${line.trim()}` });
    } else {
      const colon = line.indexOf(':');
      fields.push({ name: line.slice(0, colon), value: line.slice(colon + 1).trim() });
    }
  }
  return {
    status,
    reason: 'X',
    headers: new HeaderList(fields),
    rawHead: Buffer.from(raw, 'latin1'),
    httpHeads,
    body: body === null ? null : { bytes: Buffer.byteLength(body), sha256: sha(body) },
  };
}

describe('mapAnswer: clean and infected', () => {
  it.each([
    ['204', respmod, answer(204), { outcome: 'clean' }],
    ['200 echo of the same status and body', respmod, answer(200, [], [head('res-hdr', 'HTTP/1.0 200 OK')], BODY), { outcome: 'clean' }],
    ['200 echo without res-hdr, same body', respmod, answer(200, [], [], BODY), { outcome: 'clean' }],
    ['REQMOD 200 echo of the request', reqmod, answer(200, [], [head('req-hdr', 'POST http://example.com/upload HTTP/1.0')], BODY), { outcome: 'clean' }],
    ['X-Infection-Found', respmod, answer(200, ['X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature;']), { outcome: 'infected', threats: ['Eicar-Test-Signature'] }],
    ['X-Infection-Found, a name with spaces', respmod, answer(200, ['X-Infection-Found: Type=0; Resolution=2; Threat=EICAR Test File (NOT a Virus!);']), { outcome: 'infected', threats: ['EICAR Test File (NOT a Virus!)'] }],
    ['X-Virus-ID only', respmod, answer(200, ['X-Virus-ID: EICAR Test String']), { outcome: 'infected', threats: ['EICAR Test String'] }],
    [
      'X-Violations-Found: two violations (Symantec 201)',
      respmod,
      answer(201, ['X-Violations-Found: 2', '\ta.exe', '\tW32.Evil', '\t11101', '\t2', '\tb.doc', '\tW97M.Macro Virus', '\t11102', '\t0']),
      { outcome: 'infected', threats: ['W32.Evil', 'W97M.Macro Virus'] },
    ],
    [
      'c-icap virus_scan: both headers name the same threat once',
      respmod,
      answer(200, ['X-Infection-Found: Type=0; Resolution=2; Threat=IcapBridge.Test.Eicar.UNOFFICIAL;', 'X-Violations-Found: 1', '\t-', '\tIcapBridge.Test.Eicar.UNOFFICIAL', '\t0', '\t0'], [head('res-hdr', 'HTTP/1.0 403 Forbidden')], '<html/>'),
      { outcome: 'infected', threats: ['IcapBridge.Test.Eicar.UNOFFICIAL'] },
    ],
    ['204 carrying X-Virus-ID is still infected', respmod, answer(204, ['X-Virus-ID: Worm.X']), { outcome: 'infected', threats: ['Worm.X'] }],
    ['X-Infection-Found without a Threat', respmod, answer(200, ['X-Infection-Found: Type=2; Resolution=2;']), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['201 without infection headers', respmod, answer(201), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['200 with a 403 block page, no infection header', respmod, answer(200, [], [head('res-hdr', 'HTTP/1.1 403 Forbidden')], '<html>no</html>'), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['200 same status, another body', respmod, answer(200, [], [head('res-hdr', 'HTTP/1.1 200 OK')], 'cleaned copy'), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['200 same status, no body', respmod, answer(200, [], [head('res-hdr', 'HTTP/1.1 200 OK')], null), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['200 echo of a preview the service saw alone', { ...respmod, complete: false }, answer(200, [], [head('res-hdr', 'HTTP/1.1 200 OK')], BODY), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['REQMOD answered with a response (request satisfaction)', reqmod, answer(200, [], [head('res-hdr', 'HTTP/1.1 403 Forbidden')], 'denied'), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
    ['REQMOD with another request line', reqmod, answer(200, [], [head('req-hdr', 'GET http://blocked.example/ HTTP/1.1')], BODY), { outcome: 'infected', threats: [UPSTREAM_BLOCKED] }],
  ])('%s', (_name, sent, got, expected) => {
    expect(mapAnswer(sent, got)).toMatchObject({ ...expected, health: 'ok' });
  });

  it('an empty body sent and none returned is an unchanged echo', () => {
    const empty = { ...respmod, bodyBytes: 0, bodySha256: EMPTY_SHA256 };
    expect(mapAnswer(empty, answer(200, [], [head('res-hdr', 'HTTP/1.1 200 OK')]))).toMatchObject({ outcome: 'clean' });
  });
});

describe('mapAnswer: errors', () => {
  it.each([
    [503, 'overloaded', true, 'failure'],
    [500, 'backend-error', false, 'failure'],
    [502, 'backend-error', false, 'failure'],
    [501, 'backend-error', false, 'failure'],
    [505, 'backend-error', false, 'failure'],
    [408, 'timeout', false, 'failure'],
    [400, 'backend-error', false, 'neutral'],
    [404, 'backend-error', false, 'neutral'],
    [405, 'backend-error', false, 'neutral'],
    [418, 'backend-error', false, 'neutral'],
    [206, 'backend-error', false, 'neutral'],
    [302, 'backend-error', false, 'neutral'],
  ] as const)('%i → %s, retry %s', (status, kind, retry, health) => {
    const mapped = mapAnswer(respmod, answer(status));
    expect(mapped).toMatchObject({ outcome: 'error', kind, retry, health });
    if (mapped.outcome === 'error') expect(mapped.message).toContain(String(status));
  });

  it('says what a 404 probably means', () => {
    const mapped = mapAnswer(respmod, answer(404));
    expect(mapped.outcome === 'error' && mapped.message).toContain('wrong service path');
  });
});

describe('threat headers', () => {
  it('takes Threat= up to the terminating semicolon, wherever it stands', () => {
    expect(infectionFoundThreat('Type=0; Resolution=2; Threat=Eicar-Test-Signature;')).toBe('Eicar-Test-Signature');
    expect(infectionFoundThreat('Type=0; Resolution=2; Threat=A B C')).toBe('A B C');
    expect(infectionFoundThreat('threat=lower;')).toBe('lower');
    expect(infectionFoundThreat('Type=0; Resolution=2; Threat=;')).toBeNull();
    expect(infectionFoundThreat('Type=0; Resolution=2;')).toBeNull();
  });

  it('reads X-Violations-Found counts and threat lines; a count of 0 is no detection', () => {
    const raw = Buffer.from('ICAP/1.0 200 OK\r\nX-Violations-Found: 1\r\n\tfile\r\n\tTrojan.Y\r\n\t1\r\n\t2\r\n\r\n', 'latin1');
    expect(violationsFound(raw)).toEqual([{ count: 1, threats: ['Trojan.Y'] }]);
    const zero = Buffer.from('ICAP/1.0 200 OK\r\nX-Violations-Found: 0\r\n\r\n', 'latin1');
    expect(detection(new HeaderList([{ name: 'X-Violations-Found', value: '0' }]), zero)).toEqual({ detected: false, threats: [] });
  });

  it('a violation count with no lines is a detection without a name', () => {
    const raw = Buffer.from('ICAP/1.0 201 Created\r\nX-Violations-Found: 3\r\n\r\n', 'latin1');
    expect(detection(new HeaderList([{ name: 'X-Violations-Found', value: '3' }]), raw)).toEqual({ detected: true, threats: [] });
  });
});
