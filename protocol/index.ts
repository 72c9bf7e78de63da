/**
 * The ICAP wire codec (RFC 3507): bytes in → events out, response descriptions in → bytes out.
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
  type HeaderPairs,
  type RequestHeadInit,
  type ResponseHeadInit,
} from './encoder.js';
export { IcapProtocolError, PROTOCOL_ERRORS, type ProtocolErrorCode } from './errors.js';
export { HeaderList, type HeaderField } from './header-list.js';
export { splitServiceUri } from './request-head.js';
export type { BodySectionName, Encapsulated, HeaderSectionName } from './encapsulated.js';
export {
  DEFAULT_LIMITS,
  type DecoderEvent,
  type DecoderLimits,
  type HttpHead,
  type IcapMethod,
  type IcapRequestHead,
} from './types.js';
