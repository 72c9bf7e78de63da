/**
 * Decision → response plan: what the transaction writes (DESIGN.md step 6). Pure; the caller owns the
 * original header bytes and body (for an echo) and the ICAP status line, ISTag and Encapsulated.
 */
import type { Decision, Replacement } from './decide.js';
import { headText } from '../../protocol/index.js';
import { renderBlockPage } from './block-page.js';
import { fileNameFromUrl } from './file-name.js';
import { decisionHeader, headerToken, violationHeaders, type HeaderList, type Violation } from './headers.js';

export interface PlanContext {
  method: 'REQMOD' | 'RESPMOD';
  /** 204 may be sent: true inside a preview whatever Allow says, outside preview only when the client sent Allow: 204 (RFC 3507 §4.6). Computed by the caller. */
  may204: boolean;
  /** Does the service want 204 at all (config allow_204). */
  serviceAllows204: boolean;
  /**
   * 206 with use-original-body=0 may be sent (icap-extensions.md §C): the client sent Allow: 206,
   * the service allows it, and the client still holds the whole body. Computed by the caller
   * (src/server/partial-content.ts). Absent: false.
   */
  may206?: boolean;
  transactionId: string;
  serviceName: string;
  /**
   * Request URL if known, else ''. As the codec decodes it: a latin1 byte string, one character per
   * byte (the block page, written as UTF-8, shows its text: protocol/head-text.ts).
   */
  url: string;
  /** HTML with {{threat}} {{url}} {{transaction_id}} {{service}} {{reason}} {{part}}. */
  blockPageTemplate: string;
  /** The configured policy rule that chose the backends, if one did (named in the decision header). */
  rule?: string;
  /** The verdict came from the verdict cache, not from a scan now (`cache=hit` in the decision header). */
  cacheHit?: boolean;
}

export type ResponsePlan =
  /** ICAP 204: the client uses its own copy unchanged. */
  | { kind: 'no-content'; icapHeaders: [string, string][] }
  /** ICAP 200 with the original HTTP header bytes and body. */
  | { kind: 'echo'; icapHeaders: [string, string][] }
  /** ICAP 206 with the original HTTP header bytes and `use-original-body=0`: the client keeps its own body. */
  | { kind: 'partial-content'; icapHeaders: [string, string][] }
  /** ICAP 200 with an encapsulated HTTP/1.1 403 (head ends with CRLF CRLF). */
  | { kind: 'block'; icapHeaders: [string, string][]; httpHead: Buffer; httpBody: Buffer }
  /**
   * ICAP 200 with the original HTTP head rewritten for the new body (rewriteHttpHead) and the
   * replacement body; the caller rewrites the head it holds (req-hdr for REQMOD, res-hdr for RESPMOD).
   */
  | { kind: 'replace'; icapHeaders: [string, string][]; replacement: Replacement };

export function planResponse(decision: Decision, ctx: PlanContext): ResponsePlan {
  switch (decision.reason) {
    case 'clean':
    case 'not-scanned':
    case 'allow-list':
      return planAllow(decision, ctx);
    case 'error-policy':
    case 'rule':
      return decision.action === 'allow' ? planAllow(decision, ctx) : planBlock(decision, ctx);
    case 'infected':
    case 'deny-list':
      return planBlock(decision, ctx);
    case 'sanitized': {
      // §B Resolution=1: "repaired file returned". Named only when the engine said what it removed.
      const icapHeaders: HeaderList = [decisionHeader(decision, ctx.rule, ctx)];
      for (const note of decision.replacement.notes) icapHeaders.push(['X-Infection-Found', `Type=0; Resolution=1; Threat=${note};`]);
      return { kind: 'replace', icapHeaders, replacement: decision.replacement };
    }
  }
}

function planAllow(decision: Decision, ctx: PlanContext): ResponsePlan {
  const icapHeaders: HeaderList = [decisionHeader(decision, ctx.rule, ctx)];
  // RFC 3507 §4.6: 204 only when the client allowed it (Allow: 204, or any preview); the service may
  // still prefer not to (allow_204: false). Next best is a 206 that sends the headers and lets the
  // client use its own body (icap-extensions.md §C), which saves echoing it; a 200 echo is always
  // a valid "unchanged".
  if (ctx.may204 && ctx.serviceAllows204) return { kind: 'no-content', icapHeaders };
  return ctx.may206 === true ? { kind: 'partial-content', icapHeaders } : { kind: 'echo', icapHeaders };
}

/**
 * A block is the same for REQMOD and RESPMOD: in REQMOD the 403 is a request satisfaction (RFC 3507
 * §4.8.2 — the ICAP server answers the HTTP request itself); in RESPMOD it replaces the origin's
 * response (icap-extensions.md §B example).
 */
function planBlock(decision: Extract<Decision, { action: 'block' }>, ctx: PlanContext): ResponsePlan {
  const icapHeaders: HeaderList = [];
  let threat = '';
  let part = '';
  let reason: string;
  if (decision.reason === 'infected') {
    // The client sees one entry per distinct threat (and part); which backend found it is for our logs.
    const violations = new Map<string, Violation>();
    const urlFileName = fileNameFromUrl(ctx.url);
    for (const t of decision.threats) {
      const text = t.part === undefined ? t.name : `${t.name} (in ${t.part})`;
      if (!violations.has(text)) violations.set(text, { threat: text, fileName: t.part ?? urlFileName, name: t.name });
    }
    threat = [...violations.keys()].join(', ');
    part = [...new Set(decision.threats.flatMap((t) => (t.part === undefined ? [] : [t.part])))].join(', ');
    reason = `infected: ${threat}`;
    icapHeaders.push(...violationHeaders([...violations.values()]));
  } else if (decision.reason === 'rule') {
    // Policy blocks are not threats either: no X-Infection-Found (§B is for found threats).
    reason = `blocked by policy rule ${decision.rule}`;
  } else if (decision.reason === 'deny-list') {
    reason = `on the deny list ${decision.list}`;
  } else {
    // Not infected, just unscanned: no X-Infection-Found, but say why.
    reason = `scan failed: ${decision.errors.map((e) => `${e.kind} (${headerToken(e.backend)})`).join(', ')}`;
  }
  icapHeaders.push(['X-Response-Info', 'Blocked'], decisionHeader(decision, ctx.rule, ctx));

  const httpBody = Buffer.from(
    renderBlockPage(ctx.blockPageTemplate, {
      threat,
      // The page is UTF-8: the URL's bytes as text, not each byte encoded again (`cafÃ©`).
      url: headText(ctx.url),
      transaction_id: ctx.transactionId,
      service: ctx.serviceName,
      reason,
      part,
    }),
    'utf8',
  );
  const httpHead = Buffer.from(
    'HTTP/1.1 403 Forbidden\r\n' +
      'Content-Type: text/html; charset=utf-8\r\n' +
      // Bytes, not characters: the URL or template may hold non-ASCII.
      `Content-Length: ${httpBody.length}\r\n` +
      'Cache-Control: no-store\r\n' +
      '\r\n',
    'latin1',
  );
  return { kind: 'block', icapHeaders, httpHead, httpBody };
}
