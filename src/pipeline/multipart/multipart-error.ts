import type { MultipartEvent } from './multipart-parser.js';

/** Why a multipart body could not be split into parts; each code maps to a policy outcome. */
export type MultipartErrorCode =
  /** No multipart Content-Type or no usable boundary parameter. */
  | 'no-boundary'
  /** Bytes that break RFC 2046 §5.1.1 (bad delimiter line, bad header line). */
  | 'malformed'
  /** The body ended before the close delimiter. */
  | 'truncated'
  | 'too-many-parts'
  | 'part-header-too-large';

export class MultipartError extends Error {
  readonly code: MultipartErrorCode;
  /**
   * Events the failing write() produced before the error (parts that ended earlier in the same
   * slice): handle them too, or complete parts would go unscanned.
   */
  events: readonly MultipartEvent[] = [];
  constructor(code: MultipartErrorCode, message: string) {
    super(message);
    this.name = 'MultipartError';
    this.code = code;
  }
}
