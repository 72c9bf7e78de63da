/**
 * multipart/form-data for scanning (issue 5): spoolMultipartParts splits a spooled body into
 * spooled parts; the parser and header helpers are exported for tests and for other callers.
 */
export {
  DEFAULT_MULTIPART_LIMITS,
  MULTIPART_FAILURE_KINDS,
  looksLikeFile,
  partLabel,
  spoolMultipartParts,
  type MultipartFailure,
  type MultipartLimits,
  type MultipartOptions,
  type MultipartPart,
  type MultipartResult,
  type OutsideBytes,
} from './spool-parts.js';
export { MultipartParser, type MultipartEvent, type MultipartParserLimits } from './multipart-parser.js';
export { MultipartError, type MultipartErrorCode } from './multipart-error.js';
export { boundaryFromContentType, parsePartHeaders, type PartHeaders } from './part-headers.js';
export { createTransferDecoder, transferDecodings, type TransferDecoder, type TransferDecoding } from './transfer-encoding.js';
