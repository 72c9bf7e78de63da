/** src/errors.ts: one table of every coded error in src/, and the base class that carries a code. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CodedError, ERROR_CODES } from '../src/errors.js';
import { PROTOCOL_ERRORS } from '../protocol/index.js';
import { SpoolError } from '../src/pipeline/spool.js';

const SRC = join(import.meta.dirname, '..', 'src');

describe('ERROR_CODES', () => {
  it('lists every ICAP_ERR_ code written in src/ (protocol codes are in protocol/errors.ts)', () => {
    const files = readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const used = new Set(files.flatMap((f) => [...readFileSync(join(SRC, f), 'utf8').matchAll(/'(ICAP_ERR_[A-Z_]+)'/g)].map((m) => m[1]!)));
    expect(used.size).toBeGreaterThan(5);
    const unlisted = [...used].filter((code) => !(code in ERROR_CODES) && !(code in PROTOCOL_ERRORS));
    expect(unlisted).toEqual([]);
  });
});

describe('CodedError', () => {
  it('carries the code, the message, the cause, and the subclass name', () => {
    const cause = new Error('ENOSPC');
    const err = new SpoolError('ICAP_ERR_SPOOL_IO', 'cannot write the temp file', { cause });
    expect(err).toBeInstanceOf(CodedError);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ name: 'SpoolError', code: 'ICAP_ERR_SPOOL_IO', message: 'cannot write the temp file', cause });
    expect(new CodedError('ICAP_ERR_CLIENT_GONE', 'connection closed').name).toBe('CodedError');
  });
});
