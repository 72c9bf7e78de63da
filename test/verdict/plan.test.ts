import { describe, expect, it } from 'vitest';
import type { BackendResult } from '../../src/backends/backend.js';
import { decide, notScanned, planResponse, type Decision, type PlanContext, type ResponsePlan } from '../../src/verdict/index.js';

const TEMPLATE =
  '<h1>Blocked</h1><p>{{reason}}</p><p>Threat: {{threat}}</p><p>URL: {{url}}</p>' +
  '<p>Service {{service}}, transaction {{transaction_id}}</p>{{unknown}}';

const ctx = (over: Partial<PlanContext> = {}): PlanContext => ({
  method: 'RESPMOD',
  may204: true,
  serviceAllows204: true,
  transactionId: 'tx-42',
  serviceName: 'avscan',
  url: 'http://example.com/files/eicar.com',
  blockPageTemplate: TEMPLATE,
  ...over,
});

const r = {
  clean: (backend: string): BackendResult => ({ outcome: 'clean', backend, durationMs: 1 }),
  infected: (backend: string, ...threats: string[]): BackendResult => ({ outcome: 'infected', backend, durationMs: 1, threats }),
  timeout: (backend: string): BackendResult => ({ outcome: 'error', backend, durationMs: 1, kind: 'timeout', message: 'took too long' }),
  unreachable: (backend: string): BackendResult => ({
    outcome: 'error',
    backend,
    durationMs: 1,
    kind: 'unreachable',
    message: 'ECONNREFUSED',
  }),
};

/** Header names are tokens; values are printable ASCII, with CRLF only as X-Violations-Found's CRLF+TAB folding. */
function expectHeadersSafe(plan: ResponsePlan): void {
  for (const [name, value] of plan.icapHeaders) {
    expect(name).toMatch(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
    const unfolded = name === 'X-Violations-Found' ? value.replaceAll('\r\n\t', ' ') : value;
    expect(unfolded, `${name} value`).toMatch(/^[\x20-\x7e]*$/);
    expect(unfolded).not.toMatch(/[\r\n]/);
  }
}

const header = (plan: ResponsePlan, name: string): string[] =>
  plan.icapHeaders.filter(([n]) => n === name).map(([, v]) => v);

function blockParts(plan: ResponsePlan): { head: string; body: string } {
  if (plan.kind !== 'block') throw new Error(`expected a block plan, got ${plan.kind}`);
  return { head: plan.httpHead.toString('latin1'), body: plan.httpBody.toString('utf8') };
}

describe('planResponse: allow decisions × 204 permission', () => {
  const allows: [label: string, decision: Decision, decisionHeader: string][] = [
    ['clean', decide([r.clean('builtin')], 'block'), 'allow; reason=clean'],
    ['not-scanned', notScanned('empty body'), 'allow; reason=not-scanned'],
    ['error allowed', decide([r.clean('builtin'), r.timeout('clamd')], 'allow'), 'allow; reason=error-policy; errors=clamd:timeout'],
    [
      'two errors allowed',
      decide([r.timeout('clamd'), r.unreachable('md')], 'allow'),
      'allow; reason=error-policy; errors=clamd:timeout,md:unreachable',
    ],
  ];
  const permissions: [may204: boolean, serviceAllows204: boolean, kind: ResponsePlan['kind']][] = [
    [true, true, 'no-content'],
    [true, false, 'echo'],
    [false, true, 'echo'],
    [false, false, 'echo'],
  ];
  const methods = ['REQMOD', 'RESPMOD'] as const;
  const rows = allows.flatMap(([label, decision, dh]) =>
    permissions.flatMap(([may204, serviceAllows204, kind]) =>
      methods.map((method) => [label, method, may204, serviceAllows204, kind, decision, dh] as const),
    ),
  );

  it.each(rows)('%s %s may204=%s allow_204=%s → %s', (_l, method, may204, serviceAllows204, kind, decision, dh) => {
    const plan = planResponse(decision, ctx({ method, may204, serviceAllows204 }));
    expect(plan).toEqual({ kind, icapHeaders: [['X-ICAP-Bridge-Decision', dh]] });
    expectHeadersSafe(plan);
  });
});

describe('planResponse: infected block', () => {
  it('writes the §B headers, one X-Infection-Found per threat, folded X-Violations-Found', () => {
    const d = decide([r.infected('builtin', 'Eicar-Test-Signature'), r.infected('clamd', 'Win.Test.EICAR_HDB-1')], 'allow');
    const plan = planResponse(d, ctx());
    expect(plan.icapHeaders).toEqual([
      ['X-Infection-Found', 'Type=0; Resolution=2; Threat=Eicar-Test-Signature;'],
      ['X-Infection-Found', 'Type=0; Resolution=2; Threat=Win.Test.EICAR_HDB-1;'],
      [
        'X-Violations-Found',
        '2\r\n\teicar.com\r\n\tEicar-Test-Signature\r\n\t0\r\n\t2\r\n\teicar.com\r\n\tWin.Test.EICAR_HDB-1\r\n\t0\r\n\t2',
      ],
      ['X-Virus-ID', 'Eicar-Test-Signature'],
      ['X-Response-Info', 'Blocked'],
      ['X-ICAP-Bridge-Decision', 'block; reason=infected'],
    ]);
    expectHeadersSafe(plan);
  });

  it('the same threat from two backends is reported to the client once', () => {
    const plan = planResponse(decide([r.infected('builtin', 'Eicar'), r.infected('clamd', 'Eicar')], 'block'), ctx());
    expect(header(plan, 'X-Infection-Found')).toEqual(['Type=0; Resolution=2; Threat=Eicar;']);
    expect(header(plan, 'X-Violations-Found')).toEqual(['1\r\n\teicar.com\r\n\tEicar\r\n\t0\r\n\t2']);
    expect(blockParts(plan).body).toContain('<p>infected: Eicar</p>');
  });

  it('mixed infected + error: infected headers plus errors in the decision header', () => {
    const plan = planResponse(decide([r.infected('builtin', 'Eicar'), r.timeout('md')], 'allow'), ctx());
    expect(header(plan, 'X-ICAP-Bridge-Decision')).toEqual(['block; reason=infected; errors=md:timeout']);
    expect(header(plan, 'X-Infection-Found')).toHaveLength(1);
    expectHeadersSafe(plan);
  });

  it('hostile engine output and URL cannot inject ICAP headers', () => {
    const plan = planResponse(
      decide([r.infected('evil,backend:x;y', 'Eicar\r\nX-Evil: 1', 'A;B"C\u0085')], 'allow'),
      ctx({ url: '/dl/x%0d%0aX-Evil:%201%3B.exe' }),
    );
    expect(header(plan, 'X-Infection-Found')).toEqual([
      'Type=0; Resolution=2; Threat=EicarX-Evil: 1;',
      'Type=0; Resolution=2; Threat=ABC;',
    ]);
    expect(header(plan, 'X-Violations-Found')[0]).toContain('\r\n\txX-Evil: 1.exe\r\n\t');
    expectHeadersSafe(plan);
  });

  it('no file name in the URL → "-"', () => {
    const plan = planResponse(decide([r.infected('builtin', 'Eicar')], 'allow'), ctx({ url: '' }));
    expect(header(plan, 'X-Violations-Found')).toEqual(['1\r\n\t-\r\n\tEicar\r\n\t0\r\n\t2']);
  });
});

describe('planResponse: block plans × method × 204 permission', () => {
  const blocks: [label: string, decision: Decision, reason: string, threat: string, decisionHeader: string, infection: boolean][] = [
    ['infected', decide([r.infected('builtin', 'Eicar')], 'allow'), 'infected: Eicar', 'Eicar', 'block; reason=infected', true],
    [
      'multiple threats',
      decide([r.infected('builtin', 'Eicar'), r.infected('clamd', 'Trojan.X', 'Eicar')], 'allow'),
      'infected: Eicar, Trojan.X',
      'Eicar, Trojan.X',
      'block; reason=infected',
      true,
    ],
    [
      'error blocked',
      decide([r.timeout('builtin')], 'block'),
      'scan failed: timeout (builtin)',
      '',
      'block; reason=error-policy; errors=builtin:timeout',
      false,
    ],
    [
      'clean + errors blocked',
      decide([r.clean('a'), r.timeout('builtin'), r.unreachable('clamd')], 'block'),
      'scan failed: timeout (builtin), unreachable (clamd)',
      '',
      'block; reason=error-policy; errors=builtin:timeout,clamd:unreachable',
      false,
    ],
    [
      'zero results (policy allow)',
      decide([], 'allow'),
      'scan failed: backend-error (none)',
      '',
      'block; reason=error-policy; errors=none:backend-error',
      false,
    ],
  ];
  const rows = blocks.flatMap(([label, decision, reason, threat, dh, infection]) =>
    (['REQMOD', 'RESPMOD'] as const).flatMap((method) =>
      [true, false].map((may204) => [label, method, may204, decision, reason, threat, dh, infection] as const),
    ),
  );

  it.each(rows)('%s %s may204=%s', (_l, method, may204, decision, reason, threat, dh, infection) => {
    const plan = planResponse(decision, ctx({ method, may204 }));
    const { head, body } = blockParts(plan);
    expect(body).toBe(
      `<h1>Blocked</h1><p>${reason}</p><p>Threat: ${threat}</p><p>URL: http://example.com/files/eicar.com</p>` +
        '<p>Service avscan, transaction tx-42</p>{{unknown}}',
    );
    // Same 403 for REQMOD (request satisfaction) and RESPMOD.
    expect(head).toBe(
      'HTTP/1.1 403 Forbidden\r\n' +
        'Content-Type: text/html; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Cache-Control: no-store\r\n' +
        '\r\n',
    );
    expect(head).not.toMatch(/X-Infection-Found/i);
    expect(header(plan, 'X-ICAP-Bridge-Decision')).toEqual([dh]);
    expect(header(plan, 'X-Response-Info')).toEqual(['Blocked']);
    expect(header(plan, 'X-Infection-Found').length > 0).toBe(infection);
    expect(header(plan, 'X-Violations-Found').length > 0).toBe(infection);
    expect(header(plan, 'X-Virus-ID').length > 0).toBe(infection);
    expectHeadersSafe(plan);
  });
});

describe('planResponse: block page bytes', () => {
  const urls: [label: string, url: string][] = [
    ['ASCII', 'http://example.com/a.exe'],
    ['Latin-1 letters', 'http://example.com/Über/naïve.exe'],
    ['CJK', 'http://例子.测试/文件.exe'],
    ['emoji', 'http://example.com/😈.exe'],
    ['escaped characters grow the body', 'http://example.com/?a=1&b=<2>&c="3"'],
  ];
  it.each(urls)('Content-Length equals Buffer.byteLength of the body (%s)', (_l, url) => {
    const plan = planResponse(decide([r.infected('builtin', 'Eicar')], 'allow'), ctx({ url, blockPageTemplate: '<p>{{url}} ✓</p>' }));
    const { head } = blockParts(plan);
    if (plan.kind !== 'block') throw new Error('unreachable');
    expect(head).toContain(`\r\nContent-Length: ${plan.httpBody.length}\r\n`);
    expect(plan.httpBody.length).toBe(Buffer.byteLength(plan.httpBody.toString('utf8')));
    expect(head.endsWith('\r\n\r\n')).toBe(true);
    expectHeadersSafe(plan);
  });

  it('a <script> in the URL is escaped in the page', () => {
    const url = 'http://evil.example/<script>alert("x")</script>?q=\'&';
    const plan = planResponse(decide([r.timeout('builtin')], 'block'), ctx({ url, blockPageTemplate: '<a href="{{url}}">{{url}}</a>' }));
    const { body } = blockParts(plan);
    expect(body).not.toContain('<script>');
    const esc = 'http://evil.example/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;?q=&#39;&amp;';
    expect(body).toBe(`<a href="${esc}">${esc}</a>`);
  });

  it('threat names, service and transaction id are escaped too', () => {
    const plan = planResponse(
      decide([r.infected('builtin', '<img src=x onerror=alert(1)>')], 'allow'),
      ctx({ serviceName: 'a&b', transactionId: '<t>', blockPageTemplate: '{{threat}}|{{service}}|{{transaction_id}}' }),
    );
    expect(blockParts(plan).body).toBe('&lt;img src=x onerror=alert(1)&gt;|a&amp;b|&lt;t&gt;');
  });
});
