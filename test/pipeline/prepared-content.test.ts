/**
 * contentFacts (prepared-content.ts): the types and digests the policy learns from prepared
 * content, read one subject at a time, and never a guess for a subject it cannot read.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { contentFacts, type PreparedContent, type Subject } from '../../src/pipeline/prepared-content.js';
import type { SpooledBody } from '../../src/pipeline/spooled-body.js';

/** A body on "disk": read through a stream, whose reads are counted while open. */
function diskBody(bytes: Buffer, open: { now: number; most: number }, fail = false): SpooledBody {
  return {
    size: bytes.length,
    memory: null,
    memoryPieces: null,
    path: '/nonexistent',
    createReadStream(start = 0, end = bytes.length) {
      open.now++;
      open.most = Math.max(open.most, open.now);
      const stream = new Readable({
        read() {
          setTimeout(() => {
            if (fail) this.destroy(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' }));
            else {
              this.push(bytes.subarray(start, end));
              this.push(null);
            }
          }, 1);
        },
      });
      stream.once('close', () => open.now--);
      return stream;
    },
  };
}

const prepared = (subjects: Subject[]): PreparedContent => ({ subjects, failures: [], decodedSha256: null, dispose: async () => {} });
const part = (body: SpooledBody, i: number): Subject => ({ body, sha256: String(i).padStart(64, '0'), raw: false, piece: { label: `p${i}`, fileName: null, mediaType: 'application/octet-stream' } });

describe('contentFacts', () => {
  it('reads the parts one at a time and types each (an upload of 200 parts opens one file at a time)', async () => {
    const open = { now: 0, most: 0 };
    const subjects = Array.from({ length: 200 }, (_, i) => part(diskBody(Buffer.from(i === 150 ? 'MZ\x90\x00rest of it' : 'plain text here'), open), i));
    const facts = await contentFacts(prepared(subjects));
    expect(facts.fileTypes).toEqual(['unknown', 'exe']);
    expect(facts.pieceSha256s).toHaveLength(200);
    expect(open.most).toBe(1);
  });

  it('rejects when a part cannot be read, rather than give it a type a block rule would miss', async () => {
    const open = { now: 0, most: 0 };
    const subjects = [part(diskBody(Buffer.from('plain text here'), open), 0), part(diskBody(Buffer.from('MZ\x90\x00'), open, true), 1)];
    await expect(contentFacts(prepared(subjects))).rejects.toThrow(/EMFILE/);
  });

  it('leaves the streams\' safety net out of the types', async () => {
    const open = { now: 0, most: 0 };
    const raw: Subject = { body: diskBody(Buffer.from('--boundary\r\n'), open), sha256: null, raw: true, streamsOnly: true };
    const facts = await contentFacts(prepared([raw, part(diskBody(Buffer.from('%PDF-1.7 ...'), open), 0)]));
    expect(facts.fileTypes).toEqual(['pdf']);
  });
});
