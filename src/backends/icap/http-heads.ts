/**
 * The encapsulated HTTP heads sent upstream (RFC 3507 §4.4; errata e4). Scanners use them: the
 * URL and Content-Type steer file-type rules, and a REQMOD needs its request head. The real
 * heads the client sent (ScanMeta.httpHeads) go out byte for byte; without them, minimal heads
 * are made from what ScanMeta knows (other-engines.md §9: "send a dummy request line if the
 * real one is sensitive … keep real response headers").
 */
import type { ScanMeta } from '../backend.js';

export interface EncapsulatedHeads {
  readonly reqHdr: Buffer | null;
  readonly resHdr: Buffer | null;
  /** The start line of the head that goes with the body (res-hdr for RESPMOD, req-hdr for REQMOD). */
  readonly startLine: string | null;
}

/** Text that may go into a synthesized head line: no whitespace or control characters. */
const SAFE = /^[\x21-\x7e]+$/;

export function encapsulatedHeads(meta: ScanMeta): EncapsulatedHeads {
  const real = meta.httpHeads;
  const url = meta.url !== undefined && SAFE.test(meta.url) ? meta.url : undefined;
  const contentType = meta.contentType !== undefined && /^[\x20-\x7e]+$/.test(meta.contentType) ? meta.contentType : undefined;
  const typeLine = contentType === undefined ? '' : `Content-Type: ${contentType}\r\n`;
  if (meta.method === 'REQMOD') {
    // errata e4: a REQMOD carries a request head; a body alone would leave the scanner blind.
    const reqHdr = real?.request ?? Buffer.from(`POST ${url ?? '/'} HTTP/1.1\r\nHost: ${hostOf(url)}\r\n${typeLine}\r\n`, 'latin1');
    return { reqHdr, resHdr: null, startLine: firstLine(reqHdr) };
  }
  const reqHdr = real?.request ?? (url === undefined ? null : Buffer.from(`GET ${url} HTTP/1.1\r\nHost: ${hostOf(url)}\r\n\r\n`, 'latin1'));
  const resHdr = real?.response ?? Buffer.from(`HTTP/1.1 200 OK\r\n${typeLine}\r\n`, 'latin1');
  return { reqHdr, resHdr, startLine: firstLine(resHdr) };
}

/** The Content-Length of the head that goes with the body, when it has a plain one. */
export function declaredLength(meta: ScanMeta): number | null {
  const head = meta.method === 'REQMOD' ? meta.httpHeads?.request : meta.httpHeads?.response;
  if (head === undefined) return null;
  const match = /\r\ncontent-length:[ \t]*(\d{1,15})[ \t]*\r\n/i.exec(head.toString('latin1'));
  return match === null ? null : Number(match[1]);
}

function hostOf(url: string | undefined): string {
  if (url !== undefined) {
    try {
      const host = new URL(url).host;
      if (host !== '' && SAFE.test(host)) return host;
    } catch {
      // a relative URL ("/upload"): no host to tell
    }
  }
  return 'localhost';
}

function firstLine(head: Buffer): string | null {
  const text = head.toString('latin1');
  const end = text.indexOf('\r\n');
  return end <= 0 ? null : text.slice(0, end);
}
