import { IcapDecoder, DEFAULT_LIMITS, type DecoderEvent, type DecoderLimits } from '../../protocol/index.js';

/** A decoder event reduced to comparable plain data; adjacent body events are merged by the caller. */
export type Normalized =
  | { type: 'request-head'; method: string; service: string; query: string; raw: string; preview: number | null; allow: string[] }
  | { type: 'http-head'; section: string; raw: string; startLine: string; headers: [string, string][] }
  | { type: 'headers-end'; body: string | null }
  | { type: 'body'; data: string }
  | { type: 'preview-end'; ieof: boolean }
  | { type: 'body-end'; trailers: string | null }
  | { type: 'message-end' };

function normalize(e: DecoderEvent): Normalized {
  switch (e.type) {
    case 'request-head':
      return {
        type: 'request-head',
        method: e.head.method,
        service: e.head.service,
        query: e.head.query,
        raw: e.head.raw.toString('latin1'),
        preview: e.head.preview,
        allow: [...e.head.allow].sort(),
      };
    case 'http-head':
      return {
        type: 'http-head',
        section: e.head.section,
        raw: e.head.raw.toString('latin1'),
        startLine: e.head.startLine,
        headers: e.head.headers.fields.map((f) => [f.name, f.value]),
      };
    case 'body':
      return { type: 'body', data: e.data.toString('latin1') };
    case 'body-end':
      return { type: 'body-end', trailers: e.trailers?.toString('latin1') ?? null };
    default:
      return { ...e } as Normalized;
  }
}

export interface DecodeResult {
  events: Normalized[];
  error: { code: string; status: number } | null;
}

/**
 * Feeds `pieces` to a fresh decoder and returns the normalized events, body events merged.
 * After each preview without ieof it calls continueBody() (the server said 100 Continue).
 */
export function decodePieces(pieces: Buffer[], limits: DecoderLimits = DEFAULT_LIMITS, afterPreview: 'continue' | 'skip' = 'continue'): DecodeResult {
  const events: Normalized[] = [];
  const decoder: IcapDecoder = new IcapDecoder((e) => {
    const n = normalize(e);
    const last = events[events.length - 1];
    if (n.type === 'body' && last?.type === 'body') last.data += n.data;
    else events.push(n);
    if (e.type === 'preview-end' && !e.ieof) {
      if (afterPreview === 'continue') decoder.continueBody();
      else decoder.skipBody();
    }
  }, limits);
  try {
    for (const p of pieces) decoder.push(p);
  } catch (err) {
    const e = err as { code?: string; status?: number };
    if (typeof e.code !== 'string' || typeof e.status !== 'number') throw err;
    return { events, error: { code: e.code, status: e.status } };
  }
  return { events, error: null };
}

/** Splits `buf` at the given offsets. */
export function splitAt(buf: Buffer, ...offsets: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const o of [...offsets, buf.length]) {
    out.push(buf.subarray(prev, o));
    prev = o;
  }
  return out;
}

/** Deterministic pseudo-random slicing (mulberry32), so failures reproduce. */
export function randomSlices(buf: Buffer, seed: number, maxSlice = 17): Buffer[] {
  let s = seed >>> 0;
  const rand = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(rand() * maxSlice);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}
