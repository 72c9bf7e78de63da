/**
 * One body part's header block (RFC 2046 §5.1.1 `body-part = MIME-part-headers [CRLF *OCTET]`,
 * RFC 7578 §4.2–4.4 for what form-data parts carry), and the multipart Content-Type boundary.
 */
import { decodeExtValue, parseHeaderValue } from './header-params.js';
import { MultipartError } from './multipart-error.js';

export interface PartHeaders {
  /** Header fields as sent (names as sent, values decoded as UTF-8, folded lines joined). */
  readonly raw: readonly (readonly [string, string])[];
  /** Content-Disposition's value, lower-cased (`form-data`; `file` inside nested multipart/mixed). */
  readonly disposition: string | null;
  /** The form field name (`name`), when given. */
  readonly fieldName: string | null;
  /** `filename*` (RFC 8187) when decodable, else `filename`; null when neither was sent. */
  readonly fileName: string | null;
  /** Media type, lower-cased, without parameters; `text/plain` when absent (RFC 7578 §4.4). */
  readonly mediaType: string;
  /** The whole Content-Type value as sent, when there was one. */
  readonly contentType: string | null;
  /** The boundary of a nested multipart part, else null. */
  readonly boundary: string | null;
}

export interface PartHeaderLimits {
  /** Most header fields in one part. */
  readonly maxHeaders: number;
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DEFAULT_MEDIA_TYPE = 'text/plain';

/** `block` is the header section without its terminating empty line. */
export function parsePartHeaders(block: Buffer, limits: PartHeaderLimits): PartHeaders {
  const raw: [string, string][] = [];
  const text = block.toString('utf8');
  for (const line of text === '' ? [] : text.split('\r\n')) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // obs-fold (RFC 5322 §3.2.2): a continuation of the previous field.
      const last = raw.at(-1);
      if (!last) throw new MultipartError('malformed', 'part header block starts with a continuation line');
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon === -1 ? '' : line.slice(0, colon);
    if (!HEADER_NAME.test(name)) throw new MultipartError('malformed', `invalid part header line "${line.slice(0, 80)}"`);
    if (raw.length >= limits.maxHeaders) {
      throw new MultipartError('part-header-too-large', `more than ${limits.maxHeaders} header fields in one part`);
    }
    raw.push([name, line.slice(colon + 1).trim()]);
  }
  return describeHeaders(raw);
}

function describeHeaders(raw: readonly (readonly [string, string])[]): PartHeaders {
  const find = (name: string): string | null => raw.find(([n]) => n.toLowerCase() === name)?.[1] ?? null;
  const dispositionHeader = find('content-disposition');
  const contentType = find('content-type');
  const disposition = dispositionHeader === null ? null : parseHeaderValue(dispositionHeader);
  const type = contentType === null ? null : parseHeaderValue(contentType);
  const mediaType = type && type.value !== '' ? type.value : DEFAULT_MEDIA_TYPE;
  const extName = disposition?.params.get('filename*');
  const fileName = (extName === undefined ? null : decodeExtValue(extName)) ?? disposition?.params.get('filename') ?? null;
  return {
    raw,
    disposition: disposition?.value ?? null,
    fieldName: disposition?.params.get('name') ?? null,
    fileName,
    mediaType,
    contentType,
    boundary: mediaType.startsWith('multipart/') ? (type?.params.get('boundary') ?? null) : null,
  };
}

/**
 * The boundary of a multipart Content-Type. RFC 2046 §5.1.1 allows 1–70 characters from a small
 * set, not ending in a space; real clients stay inside it, but we only insist on what the parser
 * relies on (no CR or LF, at most 200 bytes) so that an odd but working client is not refused.
 */
export function boundaryFromContentType(contentType: string | null | undefined): { mediaType: string; boundary: string } {
  if (!contentType) throw new MultipartError('no-boundary', 'no Content-Type');
  const { value, params } = parseHeaderValue(contentType);
  if (!value.startsWith('multipart/')) throw new MultipartError('no-boundary', `not multipart: "${value}"`);
  const boundary = params.get('boundary');
  if (boundary === undefined || boundary === '') throw new MultipartError('no-boundary', `${value} without a boundary`);
  checkBoundary(boundary);
  return { mediaType: value, boundary };
}

export function checkBoundary(boundary: string): void {
  if (/[\r\n]/.test(boundary) || Buffer.byteLength(boundary) > 200) {
    throw new MultipartError('no-boundary', 'boundary has CR or LF, or is longer than 200 bytes');
  }
}
