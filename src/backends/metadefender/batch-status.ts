/**
 * MetaDefender Core's batch answers (specs/metadefender-core-api.md §7) → what the adapter needs.
 * Pure: no I/O. Parsed as defensively as result-map.ts parses single results: nothing trusts a
 * field's presence or type, and a file this cannot judge is never clean.
 *
 * A status page lists files as flat entries (`scan_all_result_i` and `progress_percentage` at the
 * top, `process_info` inside). fileResultDocument() lifts one into the §3 result shape so the
 * completion rule and the §4 mapping of result-map.ts apply unchanged.
 */
import type { ScanErrorKind } from '../backend.js';
import { errorText, isNotFoundDocument } from './result-map.js';

/** §7: the status call is paged, 50 files per page at most. */
export const BATCH_PAGE_SIZE = 50;

type Json = Record<string, unknown>;

function object(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
}

function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

/** One page of `GET /file/batch/{batch_id}?first=&size=`. */
export interface BatchPage {
  /** `batch_files.batch_count`: files in the whole batch, when the page says. */
  readonly count: number | undefined;
  /** The page's files that carry a data_id, in listed order. */
  readonly files: readonly { readonly dataId: string; readonly entry: Json }[];
  /** Entries without a usable data_id (counted so paging still advances). */
  readonly unnamed: number;
}

/** The page, or undefined when the answer is no batch status document at all. */
export function readBatchPage(value: unknown): BatchPage | undefined {
  const root = object(value);
  const listing = object(root?.['batch_files']);
  if (!root || !listing) return undefined;
  const list = listing['files_in_batch'];
  if (list !== undefined && !Array.isArray(list)) return undefined;
  const files: { dataId: string; entry: Json }[] = [];
  let unnamed = 0;
  for (const item of (list as unknown[] | undefined) ?? []) {
    const entry = object(item);
    const dataId = entry?.['data_id'];
    if (entry && typeof dataId === 'string' && dataId !== '') files.push({ dataId, entry });
    else unnamed++;
  }
  const count = integer(listing['batch_count']);
  return { count: count !== undefined && count >= 0 ? count : undefined, files, unnamed };
}

/**
 * A batch file entry in the §3 result shape: `scan_results` from the entry's top-level code and
 * progress, `process_info` as listed (§7 example). The top-level percentage (the AV part) decides
 * only for an entry without process_info, as for old servers (§3); an entry whose process_info has
 * no percentage, or reads "Processing", is not finished whatever the top level says.
 */
export function fileResultDocument(dataId: string, entry: Json): Json {
  const scanResults: Json = {};
  for (const key of ['scan_all_result_i', 'scan_all_result_a', 'progress_percentage']) {
    if (entry[key] !== undefined) scanResults[key] = entry[key];
  }
  const doc: Json = { data_id: dataId, scan_results: scanResults };
  const processInfo = object(entry['process_info']);
  if (processInfo) doc['process_info'] = processInfo;
  return doc;
}

/** A batch call that did not work, and what it says about the server. */
export interface BatchCallFailure {
  readonly kind: ScanErrorKind;
  readonly message: string;
  /** Nothing was accepted (the open call only): another server may take the whole batch. */
  readonly retryElsewhere: boolean;
  /** Counts against the server's health (busy, broken), or says nothing about it (our key, rule). */
  readonly serverFault: boolean;
}

/**
 * §7 "Errors for all batch calls: 400, 403, 404 (batch unknown — or wrong node), 500"; 503 is
 * Core's "too busy" (§2) and 429 is treated like it. Only the open call may go elsewhere.
 */
export function batchCallFailure(step: 'open' | 'status' | 'close', status: number, body: unknown): BatchCallFailure {
  const err = errorText(body);
  const said = err ? `: ${err}` : '';
  const what = step === 'open' ? 'opening the batch' : step === 'close' ? 'closing the batch' : 'asking for the batch status';
  switch (status) {
    case 400:
    case 401:
    case 403:
      return { kind: 'backend-error', message: `MetaDefender refused ${what} (HTTP ${status}${said}); check the apikey, rule and user_agent`, retryElsewhere: false, serverFault: false };
    case 404:
      if (step === 'open') return { kind: 'backend-error', message: `MetaDefender has no batch API (HTTP 404${said} for POST /file/batch)`, retryElsewhere: false, serverFault: false };
      return { kind: 'backend-error', message: `MetaDefender no longer knows the batch (HTTP 404${said} ${what}): expired or restarted`, retryElsewhere: false, serverFault: true };
    case 429:
    case 503:
      return { kind: 'overloaded', message: `MetaDefender is too busy (HTTP ${status}${said}) ${what}`, retryElsewhere: step === 'open', serverFault: true };
    default:
      return { kind: 'backend-error', message: `MetaDefender answered ${what} with HTTP ${status}${said}`, retryElsewhere: false, serverFault: status >= 500 };
  }
}

/** §3/§9 applied to batch ids: 404, or any status with the single-member "Not Found" object. */
export function isUnknownBatch(status: number, body: unknown): boolean {
  return status === 404 || isNotFoundDocument(body);
}

/** Statuses worth asking again a little later (a busy or briefly broken server). */
export function isTransientStatus(status: number): boolean {
  return [429, 500, 502, 503, 504].includes(status);
}
