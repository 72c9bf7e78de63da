/**
 * A scripted scan engine for in-process tests of the scan path: it records every body it was
 * given (scan(), streams, scanParts), says infected when a body holds one of its markers, and can
 * be told to fail or to change its version (a signature update).
 */
import type { Backend, BackendResult, PartsScan, ScanMeta, ScanPart, StreamingScan } from '../../src/backends/backend.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';
import { EICAR } from './icap-messages.js';

/** What the engine calls each marker it finds. */
export const MARKERS: readonly (readonly [marker: Buffer, threat: string])[] = [
  [EICAR, 'Scripted.Eicar'],
  [Buffer.from('BAD-BYTES'), 'Scripted.Bad'],
];

export interface ScriptedOptions {
  readonly name?: string;
  readonly version?: string;
  /** Offer openStream (fed while the body arrives). */
  readonly streaming?: boolean;
  /** Offer scanParts (one batch per upload, like MetaDefender Core). */
  readonly parts?: boolean;
  /** Say it looks bodies up by SHA-256 (Backend.usesBodySha256, like MetaDefender's hash_lookup). */
  readonly usesBodySha256?: boolean;
}

export async function readAll(body: SpooledBody): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body.createReadStream()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class ScriptedBackend implements Backend {
  readonly name: string;
  version: string;
  readonly openStream?: Backend['openStream'];
  readonly scanParts?: Backend['scanParts'];
  readonly usesBodySha256?: boolean;
  /** Bodies given to scan(), in order. */
  readonly scanned: Buffer[] = [];
  /** The ScanMeta of each scan() call, in order. */
  readonly metas: ScanMeta[] = [];
  /** What each stream received, and how each ended. */
  readonly streamed: Buffer[] = [];
  readonly streamAborts: string[] = [];
  streamEnds = 0;
  /** Each scanParts call: the parts' labels, file names and bytes. */
  readonly partsCalls: { label: string; fileName?: string; bytes: Buffer }[][] = [];
  /** The next this-many scans (of any kind) answer an error instead of a verdict. */
  failNext = 0;

  constructor(opts: ScriptedOptions = {}) {
    this.name = opts.name ?? 'builtin';
    this.version = opts.version ?? 'scripted/1';
    if (opts.streaming) this.openStream = (meta, signal) => this.#openStream(meta, signal);
    if (opts.parts) this.scanParts = (parts, meta, signal) => this.#scanParts(parts, meta, signal);
    if (opts.usesBodySha256) this.usesBodySha256 = true;
  }

  /** Every scan of any kind, so far. */
  get scanCount(): number {
    return this.scanned.length + this.streamEnds + this.partsCalls.length;
  }

  verdict(bytes: Buffer): BackendResult {
    if (this.failNext > 0) {
      this.failNext--;
      return { outcome: 'error', backend: this.name, kind: 'timeout', message: 'scripted failure', durationMs: 1 };
    }
    const threats = MARKERS.filter(([marker]) => bytes.includes(marker)).map(([, threat]) => threat);
    return threats.length > 0
      ? { outcome: 'infected', backend: this.name, threats, durationMs: 1 }
      : { outcome: 'clean', backend: this.name, durationMs: 1 };
  }

  async scan(body: SpooledBody, meta: ScanMeta): Promise<BackendResult> {
    this.metas.push(meta);
    const bytes = await readAll(body);
    this.scanned.push(bytes);
    return this.verdict(bytes);
  }

  #openStream(_meta: ScanMeta, _signal: AbortSignal): StreamingScan {
    const chunks: Buffer[] = [];
    return {
      write: (chunk) => {
        chunks.push(Buffer.from(chunk));
        return true;
      },
      onDrain: (listener) => listener(),
      end: async () => {
        const bytes = Buffer.concat(chunks);
        this.streamed.push(bytes);
        this.streamEnds++;
        return this.verdict(bytes);
      },
      abort: (reason) => {
        this.streamed.push(Buffer.concat(chunks));
        this.streamAborts.push(reason);
      },
    };
  }

  async #scanParts(parts: readonly ScanPart[], _meta: ScanMeta, _signal: AbortSignal): Promise<PartsScan> {
    const call = await Promise.all(parts.map(async (p) => ({ label: p.label, ...(p.fileName !== undefined && { fileName: p.fileName }), bytes: await readAll(p.body) })));
    this.partsCalls.push(call);
    return {
      results: call.map((p) => this.verdict(p.bytes)),
      batch: { id: `batch-${this.partsCalls.length}`, endpoint: 'scripted:1', signed: true, verified: true },
    };
  }

  status() {
    return [{ endpoint: 'scripted', healthy: true, inFlight: 0, queued: 0 }];
  }

  async close(): Promise<void> {}
}
