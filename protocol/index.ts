/**
 * The ICAP wire codec (RFC 3507): bytes in → events out, response descriptions in → bytes out;
 * and for the client side (an upstream ICAP scanner), request heads out and responses decoded.
 * No sockets, timers, config, logging or scanning. src/ imports this file only.
 */
export { IcapDecoder, type DecoderEventHandler } from './decoder.js';
export {
  CONTINUE_100,
  CRLF,
  LAST_CHUNK,
  STATUS_TEXT,
  chunkHeader,
  encapsulatedValue,
  encodeChunk,
  encodeLastChunk,
  encodeRequestHead,
  encodeResponseHead,
  encodeSimpleResponse,
  encodeUseOriginalBody,
  type HeaderPairs,
  type RequestHeadInit,
  type ResponseHeadInit,
} from './encoder.js';
export { IcapProtocolError, PROTOCOL_ERRORS, type ProtocolErrorCode } from './errors.js';
export { foldedHeaderLines } from './folded-header.js';
export { HeaderList, type HeaderField } from './header-list.js';
export { headBytes, headText, isAscii, trimOws, userIsRawHeader } from './head-text.js';
export { httpStatusCode } from './http-status.js';
export {
  encodeAdaptationRequestHead,
  encodeOptionsRequest,
  type AdaptationRequestInit,
  type OptionsRequestInit,
} from './request-encoder.js';
export { splitServiceUri } from './request-head.js';
export {
  IcapResponseDecoder,
  type ResponseDecoderEvent,
  type ResponseDecoderEventHandler,
  type ResponseDecoderLimits,
} from './response-decoder.js';
export {
  parseResponseHead,
  type IcapResponseHead,
  type ResponseBodySection,
  type ResponseEncapsulated,
  type ResponseHeaderSection,
} from './response-head.js';
export type { BodySectionName, Encapsulated, HeaderSectionName } from './encapsulated.js';
export {
  DEFAULT_LIMITS,
  type DecoderEvent,
  type DecoderLimits,
  type HttpHead,
  type IcapMethod,
  type IcapRequestHead,
} from './types.js';
