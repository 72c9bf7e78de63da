/**
 * Incremental SHA-256: the same digest however the bytes are split, as a tap in a pipeline, and
 * from a spooled body on disk.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sha256Accumulator, createSha256Tap, sha256OfSpooledBody } from '../../src/pipeline/hashing.js';
import { BodySpool, liveSpoolFiles } from '../../src/pipeline/spool.js';

const data = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) & 0xff));
const expected = createHash('sha256').update(data).digest('hex');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-hashing-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Sha256Accumulator', () => {
  it('gives the same digest for any split, as the spool is fed', () => {
    for (const size of [1, 7, 4096, 65_536, data.length]) {
      const acc = new Sha256Accumulator();
      for (let at = 0; at < data.length; at += size) acc.update(data.subarray(at, at + size));
      expect(acc.hex(), `pieces of ${size}`).toBe(expected);
      expect(acc.bytes).toBe(data.length);
    }
  });

  it('is finished by hex(): later hex() repeats it, later update() throws', () => {
    const acc = new Sha256Accumulator();
    acc.update(Buffer.from('abc'));
    const hex = acc.hex();
    expect(acc.hex()).toBe(hex);
    expect(() => acc.update(Buffer.from('d'))).toThrow();
    expect(new Sha256Accumulator().hex()).toBe(createHash('sha256').digest('hex'));
  });
});

describe('createSha256Tap', () => {
  it('passes bytes through unchanged and hashes them', async () => {
    const tap = createSha256Tap();
    const out: Buffer[] = [];
    expect(() => tap.hex()).toThrow(/before its stream ended/);
    await pipeline(
      Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
      tap,
      new Writable({
        write(chunk: Buffer, _enc, done) {
          out.push(chunk);
          done();
        },
      }),
    );
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(tap.hex()).toBe(expected);
    expect(tap.bytes).toBe(data.length);
  });
});

describe('sha256OfSpooledBody', () => {
  it('hashes a body spilled to disk in one read', async () => {
    const spool = new BodySpool({ memoryBytes: 1024, directory: dir });
    spool.write(data);
    const body = await spool.end();
    expect(body.path).not.toBeNull();
    try {
      expect(await sha256OfSpooledBody(body)).toBe(expected);
      const aborted = new AbortController();
      aborted.abort();
      await expect(sha256OfSpooledBody(body, aborted.signal)).rejects.toThrow();
    } finally {
      await spool.dispose();
    }
    expect(liveSpoolFiles().size).toBe(0);
  });
});
