/**
 * Accepted files and the result document a poll returns (specs/metadefender-core-api.md §3).
 * Progress is a function of time since upload, so a job needs no timer: every poll computes
 * where it stands now. Only the node that accepted a job knows it (§9).
 */
import { createHash, randomBytes } from 'node:crypto';
import { engineCodeFor, labelOf } from './codes.js';
import type { ResolvedOptions } from './config.js';
import type { ScanOutcome } from './scanner.js';

export interface Job {
  readonly dataId: string;
  readonly fileName: string;
  readonly size: number;
  readonly md5: string;
  readonly sha1: string;
  readonly sha256: string;
  readonly fileType: string;
  readonly submittedAt: number;
  /** Key used at upload; downloads must present the same one (§5). */
  readonly apikey: string | null;
  readonly userAgent: string;
  readonly rule: string;
  readonly metadata: unknown;
  readonly batchId: string | null;
  readonly outcome: ScanOutcome;
  canceled: boolean;
}

export function newId(): string {
  return randomBytes(16).toString('hex');
}

export function digests(body: Buffer): { md5: string; sha1: string; sha256: string } {
  const hex = (algo: string) => createHash(algo).update(body).digest('hex');
  return { md5: hex('md5'), sha1: hex('sha1'), sha256: hex('sha256') };
}

export function sniffType(body: Buffer): string {
  if (body.subarray(0, 5).toString('latin1') === '%PDF-') return 'application/pdf';
  if (body.subarray(0, 2).toString('latin1') === 'PK') return 'application/zip';
  if (body.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))) return 'text/plain';
  return 'application/octet-stream';
}

/**
 * Where a job stands, from the time since upload: the AV part ends after scanDurationMs, the
 * whole job (policy stages included) postProcessing.durationMs later (§3 completion rule).
 */
export interface Stage {
  /** `scan_results.progress_percentage`: the AV part, 0–100. */
  readonly av: number;
  /** `process_info.progress_percentage`: the whole job, 0–100. */
  readonly overall: number;
  readonly avDone: boolean;
  readonly done: boolean;
}

export function stageOf(job: Job, now: number, options: ResolvedOptions): Stage {
  if (job.canceled) return { av: 100, overall: 100, avDone: true, done: true };
  const elapsed = now - job.submittedAt;
  const av = percent(elapsed, options.scanDurationMs);
  const overall = percent(elapsed, options.scanDurationMs + postProcessingMs(options));
  return { av, overall, avDone: av >= 100, done: overall >= 100 };
}

/** A server without process_info (omitProcessInfo) has only the AV part to report (§3). */
export function postProcessingMs(options: ResolvedOptions): number {
  return options.omitProcessInfo ? 0 : options.postProcessing.durationMs;
}

function percent(elapsed: number, total: number): number {
  return total === 0 ? 100 : Math.min(100, Math.floor((elapsed * 100) / total));
}

/** Finished as a whole: what downloads, hash hits, the queue and batches go by. */
export function isFinished(job: Job, now: number, options: ResolvedOptions): boolean {
  return stageOf(job, now, options).done;
}

/**
 * `scan_all_result_i`: 255 while the engines run; then what they found (engineCodeFor: 0 for a
 * DLP or file-type finding) while the policy stages run; the final code at the end.
 */
export function scanCodeOf(job: Job, stage: Stage): number {
  if (job.canceled) return 19;
  if (stage.done) return job.outcome.code;
  return stage.avDone ? engineCodeFor(job.outcome.code) : 255;
}

/**
 * `process_info.progress_percentage`, or undefined when it is left out: in 'missing' mode while
 * the policy stages run (the state §3 warns of: "until done, many fields are missing or partial").
 */
export function processProgressOf(stage: Stage, options: ResolvedOptions): number | undefined {
  const postProcessing = stage.avDone && !stage.done;
  return postProcessing && options.postProcessing.progress === 'missing' ? undefined : stage.overall;
}

/** The JSON of `GET /file/{data_id}` (and of a hash-lookup hit) as of `now`. */
export function resultDocument(job: Job, now: number, options: ResolvedOptions, baseUrl: string): Record<string, unknown> {
  const stage = stageOf(job, now, options);
  const { done, avDone } = stage;
  const outcome = job.outcome;
  const code = scanCodeOf(job, stage);
  const result = job.canceled ? 'Blocked' : done ? outcome.result : 'Processing';
  const blockedReason = job.canceled ? labelOf(19) : done ? outcome.blockedReason : '';
  const scanDetails = Object.fromEntries(
    outcome.engines.map((e) => [
      e.name,
      {
        scan_result_i: avDone ? (job.canceled ? 19 : e.code) : 255,
        threat_found: avDone && !job.canceled ? e.threat : '',
        def_time: options.engines.find((x) => x.name === e.name)?.defTime ?? '',
        scan_time: 12,
        wait_time: 3,
        eng_id: `${e.name.toLowerCase()}_1_linux`,
        location: 'local',
      },
    ]),
  );
  const doc: Record<string, unknown> = {
    data_id: job.dataId,
    file_info: {
      display_name: job.fileName,
      file_size: job.size,
      file_type: job.fileType,
      file_type_description: job.fileType,
      md5: job.md5,
      sha1: job.sha1,
      sha256: job.sha256,
      upload_timestamp: new Date(job.submittedAt).toISOString(),
    },
    scan_results: {
      data_id: job.dataId,
      progress_percentage: stage.av,
      scan_all_result_i: code,
      scan_all_result_a: labelOf(code),
      start_time: new Date(job.submittedAt).toISOString(),
      total_time: avDone ? options.scanDurationMs : 0,
      total_avs: options.engines.length,
      scan_details: scanDetails,
    },
  };
  if (job.metadata !== undefined) doc['metadata'] = job.metadata;
  if (!options.omitProcessInfo) {
    doc['process_info'] = processInfo(job, { progress: processProgressOf(stage, options), done, result, blockedReason, options });
  }
  if (done && !job.canceled && outcome.sanitization === 'sanitized' && options.sanitize.cloudObject) {
    doc['sanitized'] = {
      result: 'Allowed',
      file_path: `${baseUrl}/file/converted/${job.dataId}`,
      data_id: job.dataId,
      progress_percentage: 100,
      reason: '',
    };
  }
  return doc;
}

function processInfo(
  job: Job,
  s: { progress: number | undefined; done: boolean; result: string; blockedReason: string; options: ResolvedOptions },
): Record<string, unknown> {
  const sanitized = s.done && !job.canceled && job.outcome.sanitization === 'sanitized';
  const failed = s.done && !job.canceled && job.outcome.sanitization === 'failed';
  const converted = sanitized ? job.outcome.sanitized! : null;
  const postProcessing: Record<string, unknown> = {
    actions_ran: sanitized ? 'Sanitized' : '',
    actions_failed: failed ? 'Sanitization Failed' : '',
    converted_to: sanitized ? extensionOf(job.fileName) : '',
    converted_destination: sanitized ? sanitizedName(job.fileName) : '',
    copy_move_destination: '',
  };
  if (s.options.apiVersion === 5 && (sanitized || failed)) {
    postProcessing['sanitization_details'] = {
      description: sanitized ? 'Sanitized successfully.' : 'Sanitization failed.',
      details: [],
      ...(converted && {
        sanitized_file_info: { file_size: converted.length, sha256: createHash('sha256').update(converted).digest('hex') },
      }),
    };
  }
  const info: Record<string, unknown> = {
    ...(s.progress !== undefined && { progress_percentage: s.progress }),
    result: s.result,
    blocked_reason: s.blockedReason,
    verdicts: s.done ? [labelOf(job.canceled ? 19 : job.outcome.code)] : [],
    profile: job.rule,
    user_agent: job.userAgent,
    username: 'LOCAL/admin',
    file_type_skipped_scan: false,
    queue_time: 1,
    processing_time: s.done ? s.options.scanDurationMs + postProcessingMs(s.options) : 0,
    outdated_data: [],
    post_processing: postProcessing,
  };
  if (s.options.apiVersion === 5) info['blocked_reasons'] = s.blockedReason === '' ? [] : [s.blockedReason];
  return info;
}

export function sanitizedName(fileName: string): string {
  return `sanitized_${fileName}`;
}

function extensionOf(fileName: string): string {
  const dot = fileName.lastIndexOf('.');
  return dot > 0 ? fileName.slice(dot + 1).toLowerCase() : '';
}
