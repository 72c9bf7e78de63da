/**
 * The MetaDefender Core emulator itself, where the adapter does not reach: batches and the signed
 * report, progress, cancel, the v4 shape, auth, and its config file format.
 */
import { verify } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadOptionsFile, resolveOptions } from '../../emulators/metadefender/config.js';
import { startEmulator, type EmulatorHandle } from '../../emulators/metadefender/emulator.js';
import { sanitize, SANITIZED_MARKER } from '../../emulators/metadefender/scanner.js';
import { EICAR_SIGNATURE } from '../../src/backends/builtin/eicar.js';

const ROOT = join(import.meta.dirname, '..', '..');
let emulators: EmulatorHandle[] = [];

async function emulator(options: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  const em = await startEmulator(options);
  emulators.push(em);
  return em;
}

async function call(em: EmulatorHandle, method: string, path: string, init: { body?: string | Buffer; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${em.url}${path}`, { method, ...(init.body !== undefined && { body: init.body }), ...(init.headers && { headers: init.headers }) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json: json as Record<string, any>, headers: res.headers };
}

afterEach(async () => {
  await Promise.all(emulators.map((e) => e.close()));
  emulators = [];
});

describe('MetaDefender emulator', () => {
  it('progress rises over scanDurationMs, then the result is final', async () => {
    const em = await emulator({ scanDurationMs: 200 });
    const { json: submitted } = await call(em, 'POST', '/file', { body: 'abc', headers: { filename: 'a.txt' } });
    const early = await call(em, 'GET', `/file/${submitted['data_id']}`);
    expect(early.json['scan_results'].scan_all_result_i).toBe(255);
    expect(early.json['process_info'].result).toBe('Processing');
    expect(early.json['process_info'].progress_percentage).toBeLessThan(100);
    await new Promise((resolve) => setTimeout(resolve, 220));
    const done = await call(em, 'GET', `/file/${submitted['data_id']}`);
    expect(done.json['process_info']).toMatchObject({ progress_percentage: 100, result: 'Allowed', blocked_reason: '', blocked_reasons: [] });
    expect(done.json['file_info']).toMatchObject({ display_name: 'a.txt', file_size: 3 });
  });

  it('postProcessing: AV part done, process_info still "Processing" (progress missing or behind), then final', async () => {
    const rules = { resultRules: [{ filenameSuffix: '.dlp', code: 20, result: 'Blocked' as const, blockedReason: 'Sensitive Data Found' }] };
    for (const progress of ['missing', 'behind'] as const) {
      const em = await emulator({ scanDurationMs: 0, postProcessing: { durationMs: 300, progress }, sanitize: { all: true }, ...rules });
      const { json: submitted } = await call(em, 'POST', '/file', { body: 'card 4111\n', headers: { filename: 'p.dlp' } });
      const id = submitted['data_id'] as string;
      const { json: batch } = await call(em, 'POST', '/file/batch');
      await call(em, 'POST', '/file', { body: 'other\n', headers: { filename: 'q.dlp', batch: batch['batch_id'] } });
      const early = (await call(em, 'GET', `/file/${id}`)).json;
      expect(early['scan_results']).toMatchObject({ progress_percentage: 100, scan_all_result_i: 0 });
      expect(early['process_info']).toMatchObject({ result: 'Processing', blocked_reason: '', post_processing: { actions_ran: '' } });
      if (progress === 'missing') expect(early['process_info'].progress_percentage).toBeUndefined();
      else expect(early['process_info'].progress_percentage).toBeLessThan(100);
      const entry = (await call(em, 'GET', `/file/batch/${batch['batch_id']}`)).json['batch_files'].files_in_batch[0];
      expect(entry).toMatchObject({ progress_percentage: 100, scan_all_result_i: 0, process_info: { result: 'Processing' } });
      expect(entry.process_info.progress_percentage === undefined).toBe(progress === 'missing');
      // Nothing of the final result is out early: no converted file, no hash hit.
      expect((await call(em, 'GET', `/file/converted/${id}`)).status).toBe(404);
      expect((await call(em, 'GET', `/hash/${early['file_info'].sha256}`)).json).toEqual({ [early['file_info'].sha256]: 'Not Found' });
      await new Promise((resolve) => setTimeout(resolve, 320));
      const done = (await call(em, 'GET', `/file/${id}`)).json;
      expect(done['scan_results']).toMatchObject({ progress_percentage: 100, scan_all_result_i: 20 });
      expect(done['process_info']).toMatchObject({ progress_percentage: 100, result: 'Blocked', blocked_reason: 'Sensitive Data Found', post_processing: { actions_ran: 'Sanitized' } });
      expect((await call(em, 'GET', `/file/converted/${id}`)).status).toBe(200);
    }
  });

  it('v4: /process alias, no /readyz, no blocked_reasons; omitProcessInfo for very old servers', async () => {
    const em = await emulator({ apiVersion: 4, scanDurationMs: 0 });
    expect((await call(em, 'GET', '/readyz')).status).toBe(404);
    const { json } = await call(em, 'POST', '/file', { body: EICAR_SIGNATURE });
    const result = await call(em, 'GET', `/process/${json['data_id']}`);
    expect(result.json['process_info'].blocked_reason).toBe('Infected');
    expect(result.json['process_info'].blocked_reasons).toBeUndefined();
    const old = await emulator({ omitProcessInfo: true, scanDurationMs: 0 });
    const sub = await call(old, 'POST', '/file', { body: 'x' });
    expect((await call(old, 'GET', `/file/${sub.json['data_id']}`)).json['process_info']).toBeUndefined();
  });

  it('apikey: required everywhere but /readyz; downloads need the uploader\'s key', async () => {
    const em = await emulator({ apikeys: ['k1', 'k2'], scanDurationMs: 0, sanitize: { all: true } });
    expect((await call(em, 'GET', '/readyz')).status).toBe(200);
    expect(await call(em, 'GET', '/version')).toMatchObject({ status: 400, json: { err: 'Apikey is required.' } });
    const { json } = await call(em, 'POST', '/file', { body: 'x', headers: { apikey: 'k1' } });
    expect((await call(em, 'GET', `/file/converted/${json['data_id']}`, { headers: { apikey: 'k2' } })).status).toBe(405);
    const ok = await call(em, 'GET', `/file/converted/${json['data_id']}`, { headers: { apikey: 'k1' } });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe(`${SANITIZED_MARKER.toString()}x`);
  });

  it('sanitization overwrites EICAR with dashes and keeps the length arithmetic', () => {
    const out = sanitize(Buffer.concat([EICAR_SIGNATURE, Buffer.from('|'), EICAR_SIGNATURE]));
    expect(out.length).toBe(SANITIZED_MARKER.length + 2 * EICAR_SIGNATURE.length + 1);
    expect(out.includes(EICAR_SIGNATURE)).toBe(false);
    expect(out.subarray(SANITIZED_MARKER.length).toString()).toBe(`${'-'.repeat(68)}|${'-'.repeat(68)}`);
  });

  it('cancel: an unfinished job ends as Canceled (19)', async () => {
    const em = await emulator({ scanDurationMs: 10_000 });
    const { json } = await call(em, 'POST', '/file', { body: 'x' });
    const id = json['data_id'] as string;
    expect((await call(em, 'POST', `/file/${id}/cancel`)).json).toEqual({ [id]: 'cancelled' });
    const result = await call(em, 'GET', `/file/${id}`);
    expect(result.json['scan_results'].scan_all_result_i).toBe(19);
    expect((await call(em, 'POST', '/file/nope/cancel')).status).toBe(404);
  });

  it('batches: open, add, status, close, signed report, cancel on either path', async () => {
    const em = await emulator({ scanDurationMs: 0 });
    const opened = await call(em, 'POST', '/file/batch', { headers: { 'user-data': 'ticket%204711', user_agent: 'icap-bridge' } });
    const batchId = opened.json['batch_id'] as string;
    expect(batchId).toMatch(/^[0-9a-f]{32}$/);
    await call(em, 'POST', '/file', { body: 'clean', headers: { batch: batchId, filename: 'a.txt' } });
    await call(em, 'POST', '/file', { body: EICAR_SIGNATURE, headers: { batch: batchId, filename: 'b.txt' } });
    expect((await call(em, 'POST', '/file', { body: 'x', headers: { batch: 'unknown' } })).status).toBe(404);
    const status = await call(em, 'GET', `/file/batch/${batchId}?first=1&size=1`);
    expect(status.json).toMatchObject({
      batch_id: batchId,
      is_closed: false,
      user_data: 'ticket 4711',
      process_info: { result: 'Blocked', blocked_reason: 'Infected' },
      scan_results: { scan_all_result_i: 1 },
      batch_files: { batch_count: 2, first_index: 1, page_size: 1, files_in_batch: [{ display_name: 'b.txt', detected_by: 2 }] },
    });
    expect((await call(em, 'GET', `/file/batch/${batchId}/certificate`)).status).toBe(400);
    expect((await call(em, 'POST', `/file/batch/${batchId}/close`)).json['is_closed']).toBe(true);
    expect((await call(em, 'POST', '/file', { body: 'x', headers: { batch: batchId } })).status).toBe(400);

    const cert = await call(em, 'GET', `/file/batch/${batchId}/certificate`);
    expect(cert.headers.get('content-type')).toBe('text/plain');
    const { signature, certificate, ...signed } = parseYaml(cert.text) as Record<string, unknown>;
    expect(verify('sha256', Buffer.from(JSON.stringify(signed)), certificate as string, Buffer.from(signature as string, 'hex'))).toBe(true);
    expect(signed['batch_id']).toBe(batchId);

    for (const cancelPath of ['/file/batch/{id}/cancel', '/file/{id}/cancel']) {
      const b = (await call(em, 'POST', '/file/batch')).json['batch_id'] as string;
      expect((await call(em, 'POST', cancelPath.replace('{id}', b))).json).toEqual({ [b]: 'cancelled' });
      expect((await call(em, 'GET', `/file/batch/${b}`)).json['is_closed']).toBe(true);
    }
    expect((await call(em, 'GET', '/file/batch/nope')).status).toBe(404);
  });

  it('close via callback needs a callbackurl', async () => {
    const em = await emulator();
    const b = (await call(em, 'POST', '/file/batch')).json['batch_id'] as string;
    expect((await call(em, 'POST', `/file/batch/${b}/close/callback`)).status).toBe(403);
    expect((await call(em, 'POST', `/file/batch/${b}/close/callback`, { headers: { callbackurl: 'http://127.0.0.1:9/hook' } })).json).toEqual({
      [b]: 'Callback url set',
    });
    expect((await call(em, 'POST', `/file/batch/${b}/close/callback`, { headers: { callbackurl: 'http://127.0.0.1:9/hook' } })).status).toBe(400);
  });

  it('a full queue answers 503 on submit and on /readyz', async () => {
    const em = await emulator({ maxQueue: 1, scanDurationMs: 10_000 });
    expect((await call(em, 'POST', '/file', { body: 'a' })).status).toBe(200);
    expect(await call(em, 'POST', '/file', { body: 'b' })).toMatchObject({ status: 503, json: { err: 'Server is too busy. Try again later.' } });
    expect((await call(em, 'GET', '/readyz')).status).toBe(503);
  });

  it('rejects bad metadata and callback URLs', async () => {
    const em = await emulator();
    expect((await call(em, 'POST', '/file', { body: 'a', headers: { metadata: '[1]' } })).status).toBe(400);
    expect((await call(em, 'POST', '/file', { body: 'a', headers: { callbackurl: 'ftp://x' } })).json).toEqual({ err: 'Callback url is invalid.' });
  });

  it('loads example.yaml; unknown keys are errors', () => {
    const options = resolveOptions(loadOptionsFile(join(ROOT, 'emulators/metadefender/example.yaml')));
    expect(options).toMatchObject({ port: 8008, apiVersion: 5, sanitize: { filenameSuffixes: ['.docx', '.pdf'] } });
    expect(() => resolveOptions({ faults: { dropRatio: 1 } } as never)).toThrow(/faults/);
    expect(() => resolveOptions({ faults: { dropRate: { upload: 1 } } } as never)).toThrow(/dropRate/);
  });
});
