/**
 * Batches (specs/metadefender-core-api.md §7): open, add files with the `batch` header, status
 * (paged), close, cancel, and the signed report. The report is YAML (text/plain) carrying the
 * batch result, a hex `signature` and the signing key as PEM; see README.md for how to verify it.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { stringify as toYaml } from 'yaml';
import { labelOf } from './codes.js';
import type { ResolvedOptions } from './config.js';
import { isFinished, processProgressOf, scanCodeOf, stageOf, type Job } from './jobs.js';

export interface Batch {
  readonly batchId: string;
  readonly userData: string;
  readonly rule: string;
  readonly userAgent: string;
  readonly apikey: string | null;
  closed: boolean;
  readonly files: string[];
}

export interface Signer {
  readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
}

export function newSigner(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** `GET /file/batch/{id}?first=&size=` (pages of at most 50). */
export function batchStatus(
  batch: Batch,
  jobs: ReadonlyMap<string, Job>,
  now: number,
  options: ResolvedOptions,
  page: { first: number; size: number },
): Record<string, unknown> {
  const members = batch.files.map((id) => jobs.get(id)).filter((j): j is Job => j !== undefined);
  const running = members.some((j) => !isFinished(j, now, options));
  const blocked = members.find((j) => j.canceled || j.outcome.result === 'Blocked');
  const code = running ? 255 : blocked ? (blocked.canceled ? 19 : blocked.outcome.code) : 0;
  const result = running ? 'Processing' : blocked ? 'Blocked' : 'Allowed';
  const blockedReason = running || !blocked ? '' : blocked.canceled ? labelOf(19) : blocked.outcome.blockedReason;
  const size = Math.min(50, Math.max(1, page.size));
  const first = Math.max(0, page.first);
  return {
    batch_id: batch.batchId,
    is_closed: batch.closed,
    user_data: batch.userData,
    process_info: {
      result,
      blocked_reason: blockedReason,
      profile: batch.rule,
      user_agent: batch.userAgent,
      username: 'LOCAL/admin',
      file_type_skipped_scan: false,
    },
    scan_results: {
      batch_id: batch.batchId,
      scan_all_result_i: code,
      scan_all_result_a: labelOf(code),
      total_avs: options.engines.length,
    },
    batch_files: {
      batch_count: members.length,
      first_index: first,
      page_size: size,
      files_in_batch: members.slice(first, first + size).map((j) => fileEntry(j, now, options)),
    },
  };
}

function fileEntry(job: Job, now: number, options: ResolvedOptions): Record<string, unknown> {
  const stage = stageOf(job, now, options);
  const { done } = stage;
  const code = scanCodeOf(job, stage);
  const result = job.canceled ? 'Blocked' : done ? job.outcome.result : 'Processing';
  const detectedBy = stage.avDone ? job.outcome.engines.filter((e) => [1, 2, 22].includes(e.code)).length : 0;
  // The entry's top level is the AV part, its process_info the whole job (§7 example, §3).
  const progress = processProgressOf(stage, options);
  return {
    data_id: job.dataId,
    display_name: job.fileName,
    file_size: job.size,
    file_type: job.fileType,
    file_type_description: job.fileType,
    progress_percentage: stage.av,
    scan_all_result_i: code,
    scan_all_result_a: labelOf(code),
    detected_by: detectedBy,
    scanned_with: options.engines.length,
    process_info: {
      result,
      blocked_reason: done ? (job.canceled ? labelOf(19) : job.outcome.blockedReason) : '',
      ...(progress !== undefined && { progress_percentage: progress }),
      verdicts: done ? [labelOf(code)] : [],
    },
  };
}

/**
 * `GET /file/batch/{id}/certificate`: YAML of the full status document plus `signature` =
 * hex ECDSA P-256 / SHA-256 over `JSON.stringify(status)` and `certificate` = the public key (SPKI PEM).
 */
export function batchCertificate(status: Record<string, unknown>, signer: Signer, options: { tamper?: boolean } = {}): string {
  const signature = sign('sha256', Buffer.from(JSON.stringify(status)), signer.privateKey).toString('hex');
  // Fault injection: the report says something other than what was signed.
  const shown = options.tamper ? { ...status, user_data: `${String(status['user_data'] ?? '')} (altered)` } : status;
  return toYaml({ ...shown, signature, certificate: signer.publicKeyPem });
}
