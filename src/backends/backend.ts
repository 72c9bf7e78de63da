/**
 * The one small interface every scanning engine sits behind (DESIGN.md, "Backends and pools").
 * The embedded engine is one implementation; clamd, MetaDefender Core and upstream ICAP come later.
 */
import type { SpooledBody } from '../pipeline/spooled-body.js';

/** Why a scan produced no verdict. Each kind maps to allow or block by the service's policy. */
export const SCAN_ERROR_KINDS = [
  'timeout',
  'unreachable',
  'overloaded',
  'too-large',
  'encrypted',
  'unsupported',
  'backend-error',
  /**
   * A Content-Encoding body whose decoded size passed the ratio bound (issue 5): not a backend's
   * outcome but the content's. Blocks unless the failure matrix maps it to allow by name.
   */
  'decompression-bomb',
] as const;
export type ScanErrorKind = (typeof SCAN_ERROR_KINDS)[number];

/** What one backend said about one body. */
/**
 * Every result may say which endpoint produced it (`127.0.0.1:3310`, a Core URL, `worker-pool`),
 * for the access log and per-endpoint latency metrics.
 */
export type BackendResult = (

  | { readonly outcome: 'clean'; readonly backend: string; readonly durationMs: number; readonly sha256?: string }
  | {
      readonly outcome: 'infected';
      readonly backend: string;
      readonly durationMs: number;
      /** Threat names as the engine reported them; sanitized before they reach a header. */
      readonly threats: readonly string[];
      readonly sha256?: string;
    }
  | {
      readonly outcome: 'error';
      readonly backend: string;
      readonly durationMs: number;
      readonly kind: ScanErrorKind;
      readonly message: string;
      /**
       * A streamed scan lost its endpoint (no connection, connection lost, clamd's queue-full
       * silence) before a verdict: scanning the complete spool again may succeed elsewhere.
       */
      readonly retryable?: true;
    }
  | {
      /** The engine rewrote the content (MetaDefender CDR): send `body` instead of the original. */
      readonly outcome: 'sanitized';
      readonly backend: string;
      readonly durationMs: number;
      /** The new content; may live in a temp file, removed by dispose(). */
      readonly body: SpooledBody;
      /** Why the original was not passed as is (policy reasons); often empty. */
      readonly threats: readonly string[];
      /** File name and media type the engine gave the new content, when it did. */
      readonly fileName?: string;
      readonly contentType?: string;
      /** Frees `body` (its temp file). The result's owner calls it on every path; idempotent. */
      dispose(): Promise<void>;
    }
) & { readonly endpoint?: string };


/** Facts about the transaction a backend may use (file name guesses, metadata, logs). */
export interface ScanMeta {
  readonly transactionId: string;
  readonly method: 'REQMOD' | 'RESPMOD';
  readonly clientAddress: string;
  /** Request URL from the encapsulated HTTP request line, when there is one. */
  readonly url?: string;
  readonly contentType?: string;
  /** The encapsulated HTTP heads exactly as the client sent them (each ending CRLF CRLF), for engines that take them (upstream ICAP). */
  readonly httpHeads?: { readonly request?: Buffer; readonly response?: Buffer };
  /**
   * SHA-256 (lower-case hex) of the body handed to scan(), when it was computed while the body
   * arrived (see Backend.usesBodySha256); absent otherwise, and then a backend that needs the
   * digest reads the body for it.
   */
  readonly bodySha256?: string;
}

/** One endpoint of a backend as health checks and metrics see it (DESIGN.md "Backends and pools"). */
export interface EndpointStatus {
  /** e.g. `worker-pool`, `127.0.0.1:3310`, `https://core-1:8008`. */
  readonly endpoint: string;
  readonly healthy: boolean;
  /** Scans running on it now. */
  readonly inFlight: number;
  /** Scans waiting for it. */
  readonly queued: number;
}

/**
 * A scan fed while the body arrives (clamd INSTREAM, upstream ICAP), DESIGN.md step 4. The
 * transaction writes every body chunk to each open stream as it writes the spool, and reads the
 * socket only as fast as the slowest of them takes bytes.
 */
export interface StreamingScan {
  /** Body bytes, in order. Returns false when the caller must wait for onDrain before writing more. */
  write(chunk: Buffer): boolean;
  onDrain(listener: () => void): void;
  /** The body is complete: resolves the verdict. Never rejects; failures are error results. */
  end(): Promise<BackendResult>;
  /** The transaction is abandoned: release the connection, never report a verdict. */
  abort(reason: string): void;
}

/**
 * One part of a multipart upload (issue 5), scanned as its own file with its own name. Backends
 * without scanParts get scan() per part from the caller.
 */
export interface ScanPart {
  readonly body: SpooledBody;
  /** The part's file name as the client sent it (Content-Disposition `filename`), if any. */
  readonly fileName?: string;
  /** The part's media type, if it named one. */
  readonly contentType?: string;
  /** How logs and block pages name the part: its file name, `field <name>` or `part <n>`. */
  readonly label: string;
}

/** A batch the parts went to on the engine (MetaDefender Core, spec §7), for the access log. */
export interface PartsBatch {
  readonly id: string;
  /** The endpoint that held the batch (every call of it went there). */
  readonly endpoint: string;
  /** A signed result was fetched. */
  readonly signed: boolean;
  /** Its signature checked out (true) or not (false); null when there was nothing to check. */
  readonly verified: boolean | null;
  /** Why not signed or not verified, when that is the case. */
  readonly detail?: string;
}

/** What a backend said about the parts of one upload. */
export interface PartsScan {
  /** One result per part, in the parts' order. */
  readonly results: readonly BackendResult[];
  readonly batch?: PartsBatch;
}

export interface Backend {
  readonly name: string;
  /** Engine and signature-data identity; feeds the ISTag so it changes when verdicts may change. */
  readonly version: string;
  /** Never rejects: failures come back as `{ outcome: 'error' }`. Honours `signal` (abort = give up now). */
  scan(body: SpooledBody, meta: ScanMeta, signal: AbortSignal): Promise<BackendResult>;
  /**
   * Optional: the verdict at once, on the calling thread, when the backend can give it without
   * waiting (the embedded engine on a small in-memory body); undefined = call scan(). Callers try
   * it first so that such a scan needs no ScanMeta and no AbortSignal (building those was a
   * measurable share of a 4 KiB RESPMOD).
   */
  scanNow?(body: SpooledBody): BackendResult | undefined;
  /**
   * Optional: start a scan that is fed while the body arrives. Backends that need the whole body
   * first (MetaDefender Core needs Content-Length) leave it out and get scan() on the spool.
   */
  openStream?(meta: ScanMeta, signal: AbortSignal): StreamingScan;
  /**
   * Optional: scan the parts of one upload together (MetaDefender Core: one batch). Never
   * rejects: failures are error results, one per part. Honours `signal` like scan().
   */
  scanParts?(parts: readonly ScanPart[], meta: ScanMeta, signal: AbortSignal): Promise<PartsScan>;
  /**
   * Optional: true when scan() looks the body's SHA-256 up (MetaDefender Core's hash_lookup). A
   * service with such a backend hashes every body while it arrives and passes the digest in
   * ScanMeta.bodySha256, so the backend need not read a spooled body once more for it.
   */
  readonly usesBodySha256?: boolean;
  /** Readiness and load per endpoint, for /readyz and /metrics. */
  status(): readonly EndpointStatus[];
  close(): Promise<void>;
}
