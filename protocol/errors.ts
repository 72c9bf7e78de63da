/**
 * Coded protocol errors: one table, each code naming the ICAP status it maps to
 * (STYLE.md "Errors"; fastify's lib/errors.js). Branch on `code`, never on message text.
 */
export const PROTOCOL_ERRORS = {
  /** Request line, header syntax or chunk framing is not ICAP (RFC 3507 §4.3, §4.4.2). */
  ICAP_ERR_MALFORMED: 400,
  /** Encapsulated missing, in the wrong order, wrong for the method, or offsets wrong (§4.4.1). */
  ICAP_ERR_BAD_ENCAPSULATED: 400,
  /**
   * A header block or the header count passed a configured limit. ICAP defines no 413/431 for
   * headers; 400 is what every client (Squid included) understands as "this request is bad",
   * so limits answer 400 and close, like a malformed request.
   */
  ICAP_ERR_HEADER_TOO_LARGE: 400,
  ICAP_ERR_TOO_MANY_HEADERS: 400,
  ICAP_ERR_CHUNK_LINE_TOO_LONG: 400,
  /** More preview bytes than the Preview header announced, or a Preview above the limit (§4.5). */
  ICAP_ERR_BAD_PREVIEW: 400,
  /** The body passed the configured size limit (HTTP's 413 reused; §4.3.3 allows HTTP codes). */
  ICAP_ERR_BODY_TOO_LARGE: 413,
  /** A method this server does not implement (§4.3.3: 501). */
  ICAP_ERR_UNKNOWN_METHOD: 501,
  /** A version other than ICAP/1.0 (§4.3.3: 505). */
  ICAP_ERR_VERSION: 505,
} as const;

export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;

export class IcapProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** The ICAP status to answer with before closing the connection. */
  readonly status: number;

  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.name = 'IcapProtocolError';
    this.code = code;
    this.status = PROTOCOL_ERRORS[code];
  }
}
