/**
 * The status code of an HTTP status line (`HTTP/1.1 200 OK`): what /^HTTP\/\d\.\d (\d{3})/ matched,
 * read by index (the regex's match array was ≈ 400 B of every RESPMOD's allocations). Null otherwise.
 * RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
 */
export function httpStatusCode(statusLine: string | undefined): number | null {
  if (statusLine === undefined || statusLine.length < 12 || !statusLine.startsWith('HTTP/')) return null;
  if (!isDigit(statusLine, 5) || statusLine.charCodeAt(6) !== 0x2e || !isDigit(statusLine, 7) || statusLine.charCodeAt(8) !== 0x20) return null;
  if (!isDigit(statusLine, 9) || !isDigit(statusLine, 10) || !isDigit(statusLine, 11)) return null;
  return (statusLine.charCodeAt(9) - 0x30) * 100 + (statusLine.charCodeAt(10) - 0x30) * 10 + (statusLine.charCodeAt(11) - 0x30);
}

function isDigit(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0x30 && c <= 0x39;
}
