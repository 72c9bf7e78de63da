/**
 * The incremental multipart parser: the same parts however the bytes are split (STYLE.md "Split
 * the input everywhere"), header parameters as clients really send them, and every malformed
 * shape an error with a code, never a crash or a silently dropped part.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EICAR_SIGNATURE } from '../../src/backends/builtin/eicar.js';
import {
  MultipartError,
  MultipartParser,
  boundaryFromContentType,
  type MultipartEvent,
  type MultipartParserLimits,
} from '../../src/pipeline/multipart/index.js';
import { decodeExtValue, parseHeaderValue } from '../../src/pipeline/multipart/header-params.js';
import { formData, type FormPart } from './multipart-fixtures.js';

const LIMITS: MultipartParserLimits = { maxParts: 50, maxHeaderBytes: 1024, maxHeaders: 8 };
const BOUNDARY = '----WebKitFormBoundaryXyZ123';

interface ParsedPart {
  headers: [string, string][];
  fieldName: string | null;
  fileName: string | null;
  mediaType: string;
  data: string;
}

/** `preamble` and `epilogue` joined as latin1, as handed out: the bytes around the parts. */
type Outcome = { parts: ParsedPart[]; closed: boolean; error: string | null; preamble: string; epilogue: string };

/** Feeds `pieces` and folds the events into parts (data joined, as latin1 for exact bytes). */
function parse(pieces: Buffer[], boundary = BOUNDARY, limits = LIMITS): Outcome {
  const parser = new MultipartParser(boundary, limits);
  const outcome: Outcome = { parts: [], closed: false, error: null, preamble: '', epilogue: '' };
  let open: ParsedPart | null = null;
  const apply = (events: MultipartEvent[]): void => {
    for (const e of events) {
      if (e.type === 'part-start') {
        open = {
          headers: e.headers.raw.map(([n, v]) => [n, v]),
          fieldName: e.headers.fieldName,
          fileName: e.headers.fileName,
          mediaType: e.headers.mediaType,
          data: '',
        };
      } else if (e.type === 'part-data') {
        open!.data += e.data.toString('latin1');
      } else if (e.type === 'part-end') {
        outcome.parts.push(open!);
        open = null;
      } else if (e.type === 'preamble') {
        outcome.preamble += e.data.toString('latin1');
      } else if (e.type === 'epilogue') {
        outcome.epilogue += e.data.toString('latin1');
      } else {
        outcome.closed = true;
      }
    }
  };
  try {
    for (const piece of pieces) apply(parser.write(piece));
    apply(parser.end());
  } catch (err) {
    if (!(err instanceof MultipartError)) throw err;
    outcome.error = err.code;
  }
  return outcome;
}

function splitAt(bytes: Buffer, at: number): Buffer[] {
  return [bytes.subarray(0, at), bytes.subarray(at)];
}

const FIXTURE_PARTS: FormPart[] = [
  { name: 'comment', body: 'hello\r\nworld -- not a boundary\r\n--' },
  { name: 'upload', fileName: 'eicar.com', contentType: 'application/octet-stream', body: EICAR_SIGNATURE },
  // Content with a held-back near-delimiter at many split points: "\r\n--" + a boundary prefix.
  { name: 'tricky', fileName: 'tricky.bin', contentType: 'application/octet-stream', body: `\r\n--${BOUNDARY.slice(0, 10)}x\r\r\n-` },
  { name: 'euro', fileName: 'fallback.txt', fileNameStar: "UTF-8''%E2%82%AC%20rates.txt", body: 'euro' },
  { name: 'empty', fileName: '', contentType: 'application/octet-stream', body: '' },
];

describe('MultipartParser: splitting', () => {
  const fixture = formData(BOUNDARY, FIXTURE_PARTS, { preamble: 'This is the preamble.\r\n', epilogue: '\r\nepilogue' });
  const whole = parse([fixture]);

  it('parses the fixture whole: every part, in order, with names and exact bytes', () => {
    expect(whole.error).toBeNull();
    expect(whole.closed).toBe(true);
    expect(whole.parts.map((p) => [p.fieldName, p.fileName, p.mediaType])).toEqual([
      ['comment', null, 'text/plain'],
      ['upload', 'eicar.com', 'application/octet-stream'],
      ['tricky', 'tricky.bin', 'application/octet-stream'],
      ['euro', '€ rates.txt', 'text/plain'],
      ['empty', '', 'application/octet-stream'],
    ]);
    expect(whole.parts.map((p) => p.data)).toEqual(FIXTURE_PARTS.map((p) => Buffer.from(p.body).toString('latin1')));
    // The bytes around the parts are handed out too, to be scanned: a threat anywhere blocks.
    // The CRLF before the first delimiter belongs to it; the one after the close delimiter does not.
    expect([whole.preamble, whole.epilogue]).toEqual(['This is the preamble.\r\n', '\r\n\r\nepilogue']);
  });

  it('gives identical parts when split at every byte offset', () => {
    for (let i = 1; i < fixture.length; i++) expect(parse(splitAt(fixture, i)), `split at ${i}`).toEqual(whole);
  });

  it('gives identical parts fed one byte at a time', () => {
    const bytes = [...fixture].map((b) => Buffer.from([b]));
    expect(parse(bytes)).toEqual(whole);
  });

  it('round-trips random parts in random slices (property)', () => {
    const partArb = fc.record({
      name: fc.string({ maxLength: 12 }).map((s) => s.replace(/["\r\n\\]/g, '_')),
      body: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      file: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(partArb, { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 8 }), (parts, cuts) => {
        const form: FormPart[] = parts.map((p) => ({ name: p.name, body: p.body, ...(p.file ? { fileName: 'f.bin' } : {}) }));
        const bytes = formData(BOUNDARY, form);
        if (form.some((p) => Buffer.from(p.body).includes(`--${BOUNDARY}`))) return; // cannot happen with random bytes
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const pieces = [0, ...points].map((start, i) => bytes.subarray(start, points[i] ?? bytes.length));
        const result = parse(pieces);
        expect(result.error).toBeNull();
        expect(result.parts.map((p) => p.data)).toEqual(form.map((p) => Buffer.from(p.body).toString('latin1')));
      }),
      { numRuns: 300 },
    );
  });
});

describe('MultipartParser: RFC 2046 framing', () => {
  it('accepts a first boundary with no preamble and no CRLF before it, and transport padding', () => {
    const bytes = Buffer.from(`--b  \t\r\nContent-Disposition: form-data; name="a"\r\n\r\nA\r\n--b\t\r\n\r\nB\r\n--b--`);
    const outcome = parse([bytes], 'b');
    expect(outcome).toMatchObject({ error: null, closed: true });
    expect(outcome.parts.map((p) => [p.fieldName, p.data])).toEqual([
      ['a', 'A'],
      [null, 'B'], // no header fields at all: text/plain, no name
    ]);
  });

  it('accepts a multipart with no parts at all (an empty form)', () => {
    expect(parse([Buffer.from('--b--\r\n')], 'b')).toEqual({ parts: [], closed: true, error: null, preamble: '', epilogue: '\r\n' });
  });

  it('hands out the preamble and epilogue exactly as sent, at every split point', () => {
    // A preamble that starts like a delimiter: the CRLF the parser assumes before a first
    // `--b` must never come out as preamble bytes when the match then fails.
    const eicar = EICAR_SIGNATURE.toString('latin1');
    const preamble = `--c ${eicar}\r\n-`;
    const epilogue = `\r\n${eicar}\r\n--b\r\n`;
    const bytes = Buffer.from(`${preamble}\r\n--b\r\n\r\nA\r\n--b--${epilogue}`, 'latin1');
    for (let i = 0; i <= bytes.length; i++) {
      const outcome = parse(i === 0 ? [bytes] : splitAt(bytes, i), 'b');
      expect(outcome, `split at ${i}`).toEqual({ parts: [expect.objectContaining({ data: 'A' })], closed: true, error: null, preamble, epilogue });
    }
    // None at all: the first line is the delimiter, and nothing follows the close delimiter.
    expect(parse([Buffer.from('--b\r\n\r\nA\r\n--b--')], 'b')).toMatchObject({ preamble: '', epilogue: '' });
  });

  it('joins folded header lines', () => {
    const bytes = Buffer.from('--b\r\nContent-Disposition: form-data;\r\n name="folded"\r\n\r\nx\r\n--b--');
    expect(parse([bytes], 'b').parts[0]?.fieldName).toBe('folded');
  });

  it('reports a missing close delimiter as truncated, keeping the finished parts', () => {
    const full = formData(BOUNDARY, FIXTURE_PARTS.slice(0, 2));
    const cut = full.subarray(0, full.length - `--${BOUNDARY}--\r\n`.length - 10);
    const outcome = parse([cut]);
    expect(outcome.error).toBe('truncated');
    expect(outcome.parts).toHaveLength(1);
    expect(parse([Buffer.from('no boundary anywhere')], 'b').error).toBe('truncated');
  });

  it.each([
    ['a boundary followed by other text', '--b\r\n\r\nA\r\n--bX\r\n\r\nB\r\n--b--'],
    ['a lone dash after the boundary', '--b\r\n\r\nA\r\n--b-\r\n--b--'],
    ['a header line without a colon', '--b\r\nnot a header\r\n\r\nA\r\n--b--'],
    ['a header block starting with a continuation', '--b\r\n folded\r\n\r\nA\r\n--b--'],
    ['a CR not followed by LF after the boundary', '--b\rx\r\n\r\nA\r\n--b--'],
  ])('refuses %s as malformed', (_name, text) => {
    expect(parse([Buffer.from(text)], 'b').error).toBe('malformed');
  });

  it('hands over the events of a failing write that came before the error', () => {
    const bytes = Buffer.from('--b\r\n\r\nA\r\n--b\r\n\r\nB\r\n--bX');
    const parser = new MultipartParser('b', LIMITS);
    let error: unknown;
    try {
      parser.write(bytes);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(MultipartError);
    const events = (error as MultipartError).events;
    expect(events.filter((e) => e.type === 'part-end')).toHaveLength(2);
    expect(() => parser.write(Buffer.from('more'))).toThrow(MultipartError);
  });

  it('bounds header bytes, header count and part count', () => {
    const bigHeader = `--b\r\nX-Pad: ${'p'.repeat(2000)}\r\n\r\nA\r\n--b--`;
    expect(parse([Buffer.from(bigHeader)], 'b').error).toBe('part-header-too-large');
    // Never terminated: stops at the bound, not at the end of the input.
    const parser = new MultipartParser('b', LIMITS);
    expect(() => parser.write(Buffer.from(`--b\r\nX: ${'y'.repeat(5000)}`))).toThrow(MultipartError);
    const manyHeaders = `--b\r\n${'X-H: 1\r\n'.repeat(9)}\r\nA\r\n--b--`;
    expect(parse([Buffer.from(manyHeaders)], 'b').error).toBe('part-header-too-large');
    const manyParts = formData('b', Array.from({ length: 51 }, (_, i) => ({ name: `f${i}`, body: 'x' })));
    expect(parse([manyParts], 'b').error).toBe('too-many-parts');
  });
});

describe('header parameters', () => {
  it('reads the boundary quoted or not, with parameters in any order', () => {
    expect(boundaryFromContentType('multipart/form-data; boundary=abc')).toEqual({ mediaType: 'multipart/form-data', boundary: 'abc' });
    expect(boundaryFromContentType('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b;c"').boundary).toBe('a b;c');
    for (const bad of [undefined, 'text/plain; boundary=x', 'multipart/form-data', 'multipart/form-data; boundary=""']) {
      expect(() => boundaryFromContentType(bad)).toThrow(expect.objectContaining({ code: 'no-boundary' }));
    }
    expect(() => boundaryFromContentType(`multipart/form-data; boundary=${'x'.repeat(201)}`)).toThrow(MultipartError);
  });

  it('unquotes \\" and \\\\ only, keeping Windows paths', () => {
    const { params } = parseHeaderValue(String.raw`form-data; name="say \"hi\""; filename="C:\dir\a.exe"; x=1`);
    expect(params.get('name')).toBe('say "hi"');
    expect(params.get('filename')).toBe(String.raw`C:\dir\a.exe`);
    expect(params.get('x')).toBe('1');
  });

  it('keeps the first of a repeated parameter and skips ones without a value', () => {
    const { value, params } = parseHeaderValue('form-data; flag; name="a"; name="b"');
    expect(value).toBe('form-data');
    expect(params.get('name')).toBe('a');
    expect(params.has('flag')).toBe(false);
  });

  it('decodes RFC 8187 ext-values in UTF-8 and ISO-8859-1, refusing others', () => {
    expect(decodeExtValue("UTF-8''%E2%82%AC%20rates.txt")).toBe('€ rates.txt');
    expect(decodeExtValue("utf-8'en'a%2Fb")).toBe('a/b');
    expect(decodeExtValue("ISO-8859-1''%A3%20rates")).toBe('£ rates');
    expect(decodeExtValue("KOI8-R''%C1")).toBeNull();
    expect(decodeExtValue("UTF-8''%G0")).toBeNull();
    expect(decodeExtValue('no quotes')).toBeNull();
  });

  it('reads raw UTF-8 file names as browsers send them', () => {
    const bytes = formData('b', [{ name: 'f', fileName: 'résumé.pdf', contentType: 'application/pdf', body: '%PDF' }]);
    expect(parse([bytes], 'b').parts[0]?.fileName).toBe('résumé.pdf');
  });
});
