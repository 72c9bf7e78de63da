import { describe, expect, it } from 'vitest';
import { fileNameFromUrl } from '../../src/verdict/file-name.js';

describe('fileNameFromUrl', () => {
  const rows: [url: string, expected: string][] = [
    ['', '-'],
    ['http://example.com', '-'],
    ['http://example.com/', '-'],
    ['http://example.com/eicar.com', 'eicar.com'],
    ['http://example.com/dir/file.zip?x=/y.exe#frag', 'file.zip'],
    ['http://example.com/dir/sub/', 'sub'],
    ['https://user@example.com:8443/a//b.bin//', 'b.bin'],
    ['/upload/report.pdf', 'report.pdf'],
    ['/my%20file.exe', 'my file.exe'],
    ['/%C3%BCber.exe', '?ber.exe'],
    ['/a%0d%0aX-Evil:%201', 'aX-Evil: 1'],
    ['/x%3By%22z', 'xyz'],
    ['/bad%zzescape%E0%A4%A.bin', 'bad%zzescape??%A.bin'],
    ['/%FF%41', '?A'],
    ['/%0d%0a', '-'],
    ['example.com:443', '-'],
    ['/' + 'n'.repeat(300), 'n'.repeat(200)],
  ];
  it.each(rows)('%j → %j', (url, expected) => {
    expect(fileNameFromUrl(url)).toBe(expected);
  });
});
