/** Headers every ICAP response carries, and the fixed error responses. */
import { encodeSimpleResponse, type HeaderPairs } from '../../protocol/index.js';

export const SERVER_NAME = 'icap-bridge/0.1.0';

/** RFC 3507 §4.7: ISTag in every response; Date and Server as in HTTP. */
export function commonHeaders(istag: string): [string, string][] {
  return [
    ['Date', new Date().toUTCString()],
    ['Server', SERVER_NAME],
    ['ISTag', istag],
  ];
}

/** An error answer: no body (errata e1), and the connection closes after it. */
export function errorResponse(status: number, istag: string, extra: HeaderPairs = []): Buffer {
  return encodeSimpleResponse(status, [...commonHeaders(istag), ...extra, ['Connection', 'close']]);
}
