/** Sanitized results (MetaDefender CDR): precedence in decide(), the head rewrite, the plan. */
import { describe, expect, it } from 'vitest';
import type { BackendResult } from '../../src/backends/backend.js';
import { spooledBodyFromBuffer } from '../../src/pipeline/spool.js';
import { decide, planResponse, rewriteHttpHead, verdictLabel } from '../../src/verdict/index.js';

const body = spooledBodyFromBuffer(Buffer.from('clean copy'));
const sanitized: BackendResult = {
  outcome: 'sanitized',
  backend: 'core',
  durationMs: 1,
  body,
  threats: ['Macro removed'],
  fileName: 'report.pdf',
  contentType: 'application/pdf',
  dispose: async () => {},
};
const clean: BackendResult = { outcome: 'clean', backend: 'clamd', durationMs: 1 };
const infected: BackendResult = { outcome: 'infected', backend: 'clamd', durationMs: 1, threats: ['Eicar'] };
const timeout: BackendResult = { outcome: 'error', backend: 'clamd', durationMs: 1, kind: 'timeout', message: 't' };

describe('decide with a sanitized result', () => {
  it.each([
    ['sanitized + clean', [sanitized, clean], 'block', 'sanitize', 'sanitized'],
    ['sanitized + infected → infected wins', [sanitized, infected], 'block', 'block', 'infected'],
    ['sanitized + error, policy block → block', [sanitized, timeout], 'block', 'block', 'error-policy'],
    ['sanitized + error, policy allow → sanitized (errors listed)', [sanitized, timeout], 'allow', 'sanitize', 'sanitized'],
  ] as const)('%s', (_n, results, policy, action, reason) => {
    const d = decide(results, policy);
    expect(d).toMatchObject({ action, reason });
    if (d.action === 'sanitize') {
      expect(d.replacement).toMatchObject({ backend: 'core', fileName: 'report.pdf', contentType: 'application/pdf', notes: ['Macro removed'] });
      expect(verdictLabel(d)).toBe('sanitized');
    }
  });

  it('plans a replacement, never a 204, with Resolution=1', () => {
    const plan = planResponse(decide([sanitized], 'block'), {
      method: 'RESPMOD',
      may204: true,
      serviceAllows204: true,
      transactionId: 't',
      serviceName: 's',
      url: '',
      blockPageTemplate: '',
    });
    expect(plan.kind).toBe('replace');
    expect(plan.icapHeaders).toContainEqual(['X-Infection-Found', 'Type=0; Resolution=1; Threat=Macro removed;']);
    expect(plan.icapHeaders).toContainEqual(['X-ICAP-Bridge-Decision', 'sanitize; reason=sanitized']);
  });
});

describe('rewriteHttpHead', () => {
  const head = Buffer.from(
    'HTTP/1.1 200 OK\r\nContent-Type: application/msword\r\nContent-Length: 99999\r\nTransfer-Encoding: chunked\r\n' +
      'X-Keep: yes\r\nX-Folded: a\r\n b\r\nContent-Encoding: gzip\r\n  folded-dropped\r\nContent-Disposition: inline; filename="a.doc"\r\nETag: "x"\r\n\r\n',
    'latin1',
  );

  it('fixes the framing headers, keeps the rest in order, folds included', () => {
    const out = rewriteHttpHead(head, { contentLength: 10, contentType: 'application/pdf', fileName: 'rapport é.pdf' }).toString('latin1');
    expect(out).toBe(
      'HTTP/1.1 200 OK\r\nX-Keep: yes\r\nX-Folded: a\r\n b\r\nContent-Type: application/pdf\r\n' +
        `Content-Disposition: inline; filename="rapport _.pdf"; filename*=UTF-8''rapport%20%C3%A9.pdf\r\nContent-Length: 10\r\n\r\n`,
    );
  });

  it('keeps Content-Type and Content-Disposition when the engine gives none', () => {
    const out = rewriteHttpHead(head, { contentLength: 3 }).toString('latin1');
    expect(out).toContain('Content-Type: application/msword\r\n');
    expect(out).toContain('Content-Disposition: inline; filename="a.doc"\r\n');
    expect(out).not.toMatch(/Transfer-Encoding|ETag|Content-Encoding|99999/);
    expect(out.endsWith('Content-Length: 3\r\n\r\n')).toBe(true);
  });
});
