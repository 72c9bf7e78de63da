/** Headers every ICAP response carries, and the fixed error responses. */
import { encodeSimpleResponse, type HeaderPairs } from '../../protocol/index.js';

export const SERVER_NAME = 'icap-bridge/0.1.0';

/** The Date header's value, formatted once per second (it has one-second resolution anyway). */
let dateSecond = -1;
let dateText = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/** RFC 3507 §4.7: ISTag in every response; Date and Server as in HTTP. */
export function commonHeaders(istag: string): [string, string][] {
  return [
    ['Date', httpDate()],
    ['Server', SERVER_NAME],
    ['ISTag', istag],
  ];
}

/** An error answer: no body (errata e1), and the connection closes after it. */
export function errorResponse(status: number, istag: string, extra: HeaderPairs = []): Buffer {
  return encodeSimpleResponse(status, [...commonHeaders(istag), ...extra, ['Connection', 'close']]);
}
