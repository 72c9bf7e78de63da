/**
 * The verdict codes of specs/metadefender-core-api.md §4 as the emulator reports them: the label
 * (`scan_all_result_a`) and whether Core's default policy would block (`process_info.result`).
 * A result rule in the emulator's config may override the policy verdict of any code.
 */

export const RESULT_LABELS: Readonly<Record<number, string>> = {
  0: 'No Threat Detected',
  1: 'Infected',
  2: 'Suspicious',
  3: 'Failed',
  4: 'Cleaned / Deleted',
  5: 'Unknown',
  6: 'Quarantined',
  7: 'Allowlisted',
  8: 'Blocklisted',
  9: 'Exceeded Archive Depth',
  10: 'Not Scanned',
  11: 'Aborted',
  12: 'Encrypted Archive',
  13: 'Exceeded Archive Size',
  14: 'Exceeded Archive File Number',
  15: 'Password Protected Document',
  16: 'Exceeded Archive Timeout',
  17: 'File Type Mismatch',
  18: 'Potentially Vulnerable File',
  19: 'Canceled',
  20: 'Sensitive Data Found',
  21: 'YARA Rule Matched',
  22: 'Potentially Unwanted Program',
  23: 'Unsupported File Type',
  255: 'In Progress',
};

/** Every code of §4 (255 is only ever "not finished yet"). */
export const ALL_RESULT_CODES: readonly number[] = Object.keys(RESULT_LABELS).map(Number);

/** Codes Core's default policy lets through (`process_info.result: "Allowed"`). */
const ALLOWED_BY_DEFAULT = new Set([0, 5, 7, 10, 18, 20]);

export function labelOf(code: number): string {
  return RESULT_LABELS[code] ?? `Unknown result ${code}`;
}

export function defaultPolicyResult(code: number): 'Allowed' | 'Blocked' {
  return ALLOWED_BY_DEFAULT.has(code) ? 'Allowed' : 'Blocked';
}

/**
 * The code an AV engine reports for itself when the overall result is `code` (§4: engines only
 * emit 0, 1, 2, 3, 10, 19, 22, 23). Overall codes that come from other parts of Core (archive,
 * DLP, file type) leave the engines at 0.
 */
export function engineCodeFor(code: number): number {
  return [1, 2, 3, 10, 19, 22, 23].includes(code) ? code : 0;
}
