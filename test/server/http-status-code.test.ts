/** httpStatusCode (protocol/http-status.ts) reads what the regex it replaced matched, and nothing else. */
import { describe, expect, it } from 'vitest';
import { httpStatusCode } from '../../protocol/index.js';

const REGEX = /^HTTP\/\d\.\d (\d{3})/;

describe('httpStatusCode', () => {
  it.each([
    'HTTP/1.1 200 OK',
    'HTTP/1.0 404 Not Found',
    'HTTP/1.1 204',
    'HTTP/2.0 503 x',
    'HTTP/1.1 2000 OK',
    'HTTP/1.1 20 OK',
    'HTTP/1.1  200 OK',
    'HTTP/1.1 2x0 OK',
    'HTTP/11 200 OK',
    'HTTP/1.x 200 OK',
    'http/1.1 200 OK',
    'ICAP/1.0 200 OK',
    'HTTP/1.1',
    '',
    'HTTP/1,1 200 OK',
    'HTTP/1.1\t200 OK',
    'HTTP/١.1 200 OK',
  ])('%j as the regex read it', (line) => {
    const m = REGEX.exec(line);
    expect(httpStatusCode(line)).toBe(m ? Number(m[1]) : null);
  });

  it('no status line: null', () => {
    expect(httpStatusCode(undefined)).toBeNull();
  });
});
