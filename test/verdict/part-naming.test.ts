/** Naming the multipart part a threat was in (issue 5), the decompression-bomb outcome and cache=hit. */
import { describe, expect, it } from 'vitest';
import type { BackendResult } from '../../src/backends/backend.js';
import { renderBlockPage } from '../../src/verdict/block-page.js';
import { decide, failureAction, partName } from '../../src/verdict/decide.js';
import { decisionHeader, headerParamValue } from '../../src/verdict/headers.js';
import { planResponse, type PlanContext } from '../../src/verdict/plan.js';

const infected = (backend: string, ...threats: string[]): BackendResult => ({ outcome: 'infected', backend, threats, durationMs: 1 });
const clean = (backend: string): BackendResult => ({ outcome: 'clean', backend, durationMs: 1 });
const ctx: PlanContext = {
  method: 'REQMOD',
  may204: true,
  serviceAllows204: true,
  transactionId: 't-1',
  serviceName: 'reqmod',
  url: 'http://x.example/upload',
  blockPageTemplate: '<p>{{reason}}</p><p>{{part}}</p>',
};

describe('part labels', () => {
  it('are made header-safe: no CR, LF or ";", bounded, never empty', () => {
    expect(partName('evil;\r\nX-Injected: 1.exe')).toBe('evilX-Injected: 1.exe');
    expect(partName('\r\n;')).toBe('part');
    expect(partName('é'.repeat(300))).toBe('?'.repeat(100));
  });

  it('travel with the threats and errors of their results', () => {
    const d = decide(
      [clean('a'), infected('a', 'Eicar'), infected('b', 'Eicar'), { outcome: 'error', backend: 'b', kind: 'timeout', message: 'slow', durationMs: 1 }],
      'allow',
      ['field note', 'eicar;.bin', 'eicar;.bin', 'field note'],
    );
    expect(d).toMatchObject({
      action: 'block',
      reason: 'infected',
      threats: [
        { name: 'Eicar', backend: 'a', part: 'eicar.bin' },
        { name: 'Eicar', backend: 'b', part: 'eicar.bin' },
      ],
      errors: [{ backend: 'b', kind: 'timeout', part: 'field note' }],
    });
  });

  it('name the part in X-Infection-Found, X-Violations-Found, the decision header and the block page', () => {
    const d = decide([infected('a', 'Eicar'), clean('a'), infected('a', 'Other')], 'block', ['x.bin', 'note', undefined]);
    const plan = planResponse(d, ctx);
    expect(plan.kind).toBe('block');
    if (plan.kind !== 'block') return;
    const headers = plan.icapHeaders.filter(([n]) => n === 'X-Infection-Found').map(([, v]) => v);
    expect(headers).toEqual(['Type=0; Resolution=2; Threat=Eicar (in x.bin);', 'Type=0; Resolution=2; Threat=Other;']);
    expect(plan.icapHeaders).toContainEqual(['X-Violations-Found', '2\r\n\tx.bin\r\n\tEicar (in x.bin)\r\n\t0\r\n\t2\r\n\tupload\r\n\tOther\r\n\t0\r\n\t2']);
    expect(plan.icapHeaders).toContainEqual(['X-Virus-ID', 'Eicar']);
    expect(plan.icapHeaders).toContainEqual(['X-ICAP-Bridge-Decision', 'block; reason=infected; part=x.bin']);
    expect(plan.httpBody.toString()).toBe('<p>infected: Eicar (in x.bin), Other</p><p>x.bin</p>');
  });
});

describe('part labels in the decision header', () => {
  it('read as labelled: a token as it is, a label with spaces as a quoted-string (`<label> (base64)`, `field <name>`)', () => {
    const d = decide([infected('a', 'Eicar'), infected('a', 'Eicar'), infected('a', 'Eicar'), infected('a', 'Eicar')], 'block', [
      'eicar.bin (base64)',
      'field comment',
      'eicar.bin',
      'a, b=c.exe',
    ]);
    expect(decisionHeader(d)[1]).toBe('block; reason=infected; part="eicar.bin (base64)","field comment",eicar.bin,"a, b=c.exe"');
  });

  it('stay one line of printable ASCII whatever the label: quotes and backslashes escaped, the rest `?`', () => {
    expect(headerParamValue('eicar.com')).toBe('eicar.com');
    expect(headerParamValue('say "hi"\\x.bin')).toBe('"say \\"hi\\"\\\\x.bin"');
    expect(headerParamValue('a\r\nX-Injected: 1')).toBe('"a??X-Injected: 1"');
    expect(headerParamValue('café 😀.bin')).toBe('"caf? ?.bin"');
    expect(headerParamValue('')).toBe('""');
    // What partName leaves (no `;`, `"` or controls) goes in quoted as it reads.
    const d = decide([infected('a', 'Eicar')], 'block', ['evil;\r\n"X-Injected: 1".exe']);
    const value = decisionHeader(d)[1];
    expect(value).toBe('block; reason=infected; part="evilX-Injected: 1.exe"');
    expect(value).toMatch(/^[\x20-\x7e]*$/);
  });
});

describe('decompression-bomb in the failure matrix', () => {
  it('blocks under a plain "allow"; only a map naming it allows it', () => {
    expect(failureAction('allow', 'decompression-bomb')).toBe('block');
    expect(failureAction('allow', 'too-large')).toBe('allow');
    expect(failureAction({ 'too-large': 'allow' }, 'decompression-bomb')).toBe('block');
    expect(failureAction({ 'decompression-bomb': 'allow' }, 'decompression-bomb')).toBe('allow');
  });

  it('says what it decided when a plain word did not apply', () => {
    const d = decide([{ outcome: 'error', backend: 'content-decoding', kind: 'decompression-bomb', message: 'x', durationMs: 0 }], 'allow');
    expect(decisionHeader(d)[1]).toBe('block; reason=error-policy; errors=content-decoding:decompression-bomb:block');
  });
});

describe('cache=hit', () => {
  it('is appended to the decision header of an answer from the cache, after every other parameter', () => {
    const d = decide([infected('a', 'Eicar')], 'block', ['f.bin']);
    expect(decisionHeader(d, 'uploads', { cacheHit: true })[1]).toBe('block; reason=infected; rule=uploads; part=f.bin; cache=hit');
    expect(planResponse(decide([clean('a')], 'block'), { ...ctx, cacheHit: true }).icapHeaders).toEqual([['X-ICAP-Bridge-Decision', 'allow; reason=clean; cache=hit']]);
  });
});

describe('{{part}} in a block page', () => {
  it('is empty when no part is involved, and HTML-escaped when one is', () => {
    const values = { threat: 't', url: 'u', transaction_id: 'i', service: 's', reason: 'r' };
    expect(renderBlockPage('[{{part}}]', values)).toBe('[]');
    expect(renderBlockPage('[{{part}}]', { ...values, part: '<b>.exe' })).toBe('[&lt;b&gt;.exe]');
  });
});
