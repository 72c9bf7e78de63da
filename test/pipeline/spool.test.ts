import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BodySpool, liveSpoolFiles, spoolBytesOnDisk, spooledBodyFromBuffer } from '../../src/pipeline/spool.js';

let dir: string;
const spools: BodySpool[] = [];

function newSpool(memoryBytes: number, directory = dir): BodySpool {
  const spool = new BodySpool({ memoryBytes, directory });
  spools.push(spool);
  return spool;
}

/** Deterministic, non-repeating-per-64KiB content so a misplaced range shows. */
function pattern(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[i] = x >>> 24;
  }
  return buf;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'icap-bridge-spool-test-'));
});

afterEach(async () => {
  await Promise.all(spools.splice(0).map((s) => s.dispose()));
  expect(liveSpoolFiles().size).toBe(0);
  expect(spoolBytesOnDisk()).toBe(0);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('BodySpool in memory', () => {
  it('keeps a body up to the threshold in memory, the threshold included', async () => {
    const spool = newSpool(1024);
    const data = pattern(1024);
    expect(spool.write(data.subarray(0, 100))).toBe(true);
    expect(spool.write(data.subarray(100, 1000))).toBe(true);
    expect(spool.write(data.subarray(1000))).toBe(true);
    expect(spool.size).toBe(1024);
    const body = await spool.end();
    expect(body.path).toBeNull();
    expect(body.size).toBe(1024);
    expect(body.memory?.equals(data)).toBe(true);
    expect(liveSpoolFiles().size).toBe(0);
  });

  it('copies small in-memory pieces, so the caller\'s buffer is neither pinned nor shared', async () => {
    const spool = newSpool(64 * 1024);
    const data = pattern(40_000);
    for (let i = 0; i < data.length; i++) spool.write(data.subarray(i, i + 1)); // worst case: 1-byte pieces
    const reused = Buffer.from('abc');
    spool.write(reused);
    reused.fill(0);
    const body = await spool.end();
    expect(body.memory!.equals(Buffer.concat([data, Buffer.from('abc')]))).toBe(true);
    expect(body.memory!.buffer).not.toBe(data.buffer);
  });

  it('keeps pieces of 16 KiB or more as the caller\'s views (no second copy of a large body)', async () => {
    const spool = newSpool(1024 * 1024);
    const large = pattern(64 * 1024);
    const small = pattern(100, 2);
    spool.write(small);
    spool.write(large);
    const body = await spool.end();
    expect(body.memoryPieces!.map((p) => p.length)).toEqual([100, 64 * 1024]);
    expect(body.memoryPieces![1]!.buffer).toBe(large.buffer);
    expect(body.memory!.equals(Buffer.concat([small, large]))).toBe(true);
  });

  it('goes to disk from the first byte when the announced length is over the threshold', async () => {
    const spool = new BodySpool({ memoryBytes: 1000, directory: dir }, 5000);
    spools.push(spool);
    spool.write(pattern(10));
    expect(liveSpoolFiles().size).toBe(1);
    const body = await spool.end();
    expect(body.memory).toBeNull();
    expect((await readFile(body.path!)).equals(pattern(10))).toBe(true);
  });

  it('ends an empty body', async () => {
    const body = await newSpool(1024).end();
    expect(body.size).toBe(0);
    expect(body.memory?.length).toBe(0);
    expect((await collect(body.createReadStream())).length).toBe(0);
  });

  it('refuses writes after end and after dispose', async () => {
    const ended = newSpool(1024);
    await ended.end();
    expect(() => ended.write(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ICAP_ERR_SPOOL_CLOSED' }));
    const disposed = newSpool(1024);
    await disposed.dispose();
    expect(() => disposed.write(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ICAP_ERR_SPOOL_CLOSED' }));
    await expect(disposed.end()).rejects.toMatchObject({ code: 'ICAP_ERR_SPOOL_CLOSED' });
  });
});

describe('BodySpool on disk', () => {
  it('spills past the threshold into a private temp file with exact contents', async () => {
    const spool = newSpool(1000);
    const data = pattern(5000);
    spool.write(data.subarray(0, 600));
    expect(liveSpoolFiles().size).toBe(0);
    spool.write(data.subarray(600, 1001));
    expect(liveSpoolFiles().size).toBe(1);
    spool.write(data.subarray(1001));
    const body = await spool.end();
    expect(body.memory).toBeNull();
    expect(body.size).toBe(5000);
    const path = body.path!;
    expect(dirname(path)).toBe(dir);
    expect(basename(path)).toMatch(/^icap-bridge-[0-9a-f]+\.body$/);
    expect([...liveSpoolFiles()]).toEqual([path]);
    expect(spoolBytesOnDisk()).toBe(5000);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readFile(path)).equals(data)).toBe(true);
  });

  it('spills large pieces held by reference and small copied ones in their order', async () => {
    const spool = newSpool(100 * 1024);
    const data = pattern(300 * 1024);
    const cuts = [5, 20_000, 3, 70_000, 11, 20_000];
    let at = 0;
    for (const cut of cuts) {
      spool.write(data.subarray(at, at + cut));
      at += cut;
    }
    spool.write(data.subarray(at));
    const body = await spool.end();
    expect(body.memory).toBeNull();
    expect((await readFile(body.path!)).equals(data)).toBe(true);
  });

  it('returns false under disk backpressure and emits drain', async () => {
    const spool = newSpool(1024);
    const chunk = pattern(1024 * 1024);
    let writes = 0;
    while (spool.write(chunk)) {
      writes++;
      expect(writes).toBeLessThan(64);
    }
    await once(spool, 'drain');
    expect(spool.write(chunk.subarray(0, 10))).toBeTypeOf('boolean');
    const body = await spool.end();
    expect(body.size).toBe((writes + 1) * chunk.length + 10);
    expect((await stat(body.path!)).size).toBe(body.size);
  });

  it('reports a temp file it cannot create through end() and the next write()', async () => {
    const spool = newSpool(10, join(dir, 'missing-directory'));
    spool.write(pattern(100));
    await expect(spool.end()).rejects.toMatchObject({ code: 'ICAP_ERR_SPOOL_IO' });
    const other = newSpool(10, join(dir, 'missing-directory'));
    other.write(pattern(100));
    await expect(once(other, 'drain')).rejects.toMatchObject({ code: 'ICAP_ERR_SPOOL_IO' });
    expect(() => other.write(pattern(1))).toThrow(expect.objectContaining({ code: 'ICAP_ERR_SPOOL_IO' }));
  });

  it('ends a wait for room when the file fails instead (onWritable), with `failure` saying why', async () => {
    // A failed file never emits 'drain': a writer waiting for it alone would wait for ever.
    const spool = newSpool(10, join(dir, 'missing-directory'));
    expect(spool.write(pattern(256 * 1024))).toBe(false);
    expect(spool.failure).toBeNull();
    const woke = await new Promise<string>((resolve) => {
      spool.onWritable(() => resolve('woke'));
      setTimeout(() => resolve('still waiting'), 2000).unref();
    });
    expect(woke).toBe('woke');
    expect(spool.failure).toMatchObject({ code: 'ICAP_ERR_SPOOL_IO', message: expect.stringContaining('ENOENT') });
    expect(spool.listenerCount('drain')).toBe(0);
    // Once failed, a new wait ends at once.
    let again = false;
    spool.onWritable(() => (again = true));
    expect(again).toBe(true);
  });

  it('ends a wait at the next drain, leaving no listener behind', async () => {
    const spool = newSpool(10);
    while (spool.write(pattern(64 * 1024)));
    await new Promise<void>((resolve) => spool.onWritable(resolve));
    expect(spool.failure).toBeNull();
    expect(spool.listenerCount('drain')).toBe(0);
    expect(spool.eventNames()).toEqual([]);
  });
});

describe('BodySpool.dispose', () => {
  async function spilled(): Promise<{ spool: BodySpool; path: string }> {
    const spool = newSpool(10);
    spool.write(pattern(100));
    const path = [...liveSpoolFiles()].at(-1)!;
    return { spool, path };
  }

  it('removes the file after end', async () => {
    const { spool, path } = await spilled();
    const body = await spool.end();
    expect(existsSync(path)).toBe(true);
    await spool.dispose();
    expect(existsSync(path)).toBe(false);
    expect(liveSpoolFiles().size).toBe(0);
    expect(() => body.createReadStream()).toThrow(expect.objectContaining({ code: 'ICAP_ERR_SPOOL_CLOSED' }));
  });

  it('removes the file before end, even while the file is still being opened', async () => {
    const { spool, path } = await spilled();
    await spool.dispose();
    expect(existsSync(path)).toBe(false);
    expect(liveSpoolFiles().size).toBe(0);
    await expect(spool.end()).rejects.toMatchObject({ code: 'ICAP_ERR_SPOOL_CLOSED' });
  });

  it('removes the file when disposed while end() is flushing', async () => {
    const { spool, path } = await spilled();
    spool.write(pattern(4 * 1024 * 1024));
    const ending = expect(spool.end()).rejects.toMatchObject({ code: 'ICAP_ERR_SPOOL_CLOSED' });
    await spool.dispose();
    await ending;
    expect(existsSync(path)).toBe(false);
  });

  it('can be called twice, concurrently and again later', async () => {
    const { spool, path } = await spilled();
    await spool.end();
    await Promise.all([spool.dispose(), spool.dispose()]);
    await spool.dispose();
    expect(existsSync(path)).toBe(false);
    expect(liveSpoolFiles().size).toBe(0);
  });

  it('cleans up after a failed spill', async () => {
    const spool = newSpool(10, join(dir, 'missing-directory'));
    spool.write(pattern(100));
    await spool.end().catch(() => undefined);
    await spool.dispose();
    expect(liveSpoolFiles().size).toBe(0);
  });
});

describe('SpooledBody.adoptCopy', () => {
  /** A complete copy of `bytes` in a file of the test's own, as clamd's path transfer writes one. */
  async function copyOf(bytes: Buffer): Promise<string> {
    const path = join(dir, `copy-${Math.random().toString(36).slice(2)}.scan`);
    await writeFile(path, bytes);
    return path;
  }

  it('an ended in-memory body takes the copy over: memory let go, reads from the file, removed at dispose', async () => {
    const spool = newSpool(1024);
    const bytes = pattern(700);
    spool.write(bytes.subarray(0, 300));
    spool.write(bytes.subarray(300));
    const body = await spool.end();
    const earlyPieces = body.memoryPieces!;
    const path = await copyOf(bytes);

    expect(body.adoptCopy!(path)).toBe(true);
    expect(body.path).toBe(path);
    expect(body.memory).toBeNull();
    expect(body.memoryPieces).toBeNull();
    // Views handed out before stay whole: nothing was rewritten.
    expect(Buffer.concat(earlyPieces)).toEqual(bytes);
    expect(await collect(body.createReadStream())).toEqual(bytes);
    expect(await collect(body.createReadStream(250, 650))).toEqual(bytes.subarray(250, 650));
    expect(await collect(spool.createEarlyReadStream(0, 700))).toEqual(bytes);
    expect(liveSpoolFiles().has(path)).toBe(true);
    expect(spoolBytesOnDisk()).toBe(700);
    // Only once.
    expect(body.adoptCopy!(await copyOf(bytes))).toBe(false);

    await spool.dispose();
    expect(existsSync(path)).toBe(false);
    expect(liveSpoolFiles().size).toBe(0);
    expect(spoolBytesOnDisk()).toBe(0);
  });

  it('refuses (the file stays the caller\'s) for a body on disk, a disposed body, one built from a Buffer', async () => {
    const onDisk = newSpool(10);
    onDisk.write(pattern(100));
    const diskBody = await onDisk.end();
    const copy = await copyOf(pattern(100));
    expect(diskBody.adoptCopy!(copy)).toBe(false);
    expect(diskBody.path).not.toBe(copy);

    const disposed = newSpool(1024);
    disposed.write(pattern(100));
    const disposedBody = await disposed.end();
    await disposed.dispose();
    expect(disposedBody.adoptCopy!(copy)).toBe(false);

    const fromBuffer = spooledBodyFromBuffer(pattern(100));
    expect(fromBuffer.adoptCopy!(copy)).toBe(false);
    expect(fromBuffer.memory).toEqual(pattern(100));
    expect(fromBuffer.path).toBeNull();

    expect(existsSync(copy)).toBe(true);
    expect(liveSpoolFiles().has(copy)).toBe(false);
    await rm(copy);
  });
});

describe('SpooledBody.createReadStream', () => {
  const size = 200 * 1024 + 7;
  const data = pattern(size, 7);
  const ranges: Array<[number | undefined, number | undefined]> = [
    [undefined, undefined],
    [0, size],
    [0, 0],
    [size, size],
    [10, 100],
    [65536 - 5, 65536 + 5],
    [size - 1, size],
    [100, undefined],
  ];

  for (const where of ['memory', 'disk'] as const) {
    it(`reads ranges from ${where}`, async () => {
      const spool = newSpool(where === 'memory' ? size : 1024);
      for (let at = 0; at < size; at += 10_000) spool.write(data.subarray(at, at + 10_000));
      const body = await spool.end();
      expect(where === 'memory' ? body.memory : body.path).not.toBeNull();
      for (const [start, end] of ranges) {
        const got = await collect(body.createReadStream(start, end));
        expect(got.equals(data.subarray(start ?? 0, end ?? size)), `[${start}, ${end})`).toBe(true);
      }
      for (const [start, end] of [[-1, 5], [5, 4], [0, size + 1], [0.5, 2]] as const) {
        expect(() => body.createReadStream(start, end)).toThrow(RangeError);
      }
    });
  }

  it('streams a body built from a Buffer', async () => {
    const body = spooledBodyFromBuffer(data);
    expect(body.size).toBe(size);
    expect(body.memory).toBe(data);
    expect(body.path).toBeNull();
    expect((await collect(body.createReadStream(3, 70_000))).equals(data.subarray(3, 70_000))).toBe(true);
  });
});
