/**
 * What the emulated engines "find" in a file, decided once at upload (README.md, "Detection"):
 *
 *   configured SHA-256 ─► its code (default 1) and name
 *   EICAR anywhere     ─► 1, each engine's own EICAR name
 *   first result rule  ─► its code / policy / reason / threat
 *   otherwise          ─► 0
 *
 * and whether a sanitized copy exists. Sanitization is a documented, checkable transformation:
 * SANITIZED_MARKER is prepended and every EICAR occurrence is overwritten with '-' (same length).
 */
import { EICAR_SIGNATURE } from '../../src/backends/builtin/eicar.js';
import { defaultPolicyResult, engineCodeFor, labelOf } from './codes.js';
import type { ResolvedOptions } from './config.js';

export const SANITIZED_MARKER = Buffer.from('MetaDefender-Emulator: sanitized\n', 'latin1');

export interface EngineVerdict {
  readonly name: string;
  readonly code: number;
  readonly threat: string;
}

export interface ScanOutcome {
  readonly code: number;
  readonly result: 'Allowed' | 'Blocked';
  /** '' when allowed. */
  readonly blockedReason: string;
  readonly engines: readonly EngineVerdict[];
  readonly sanitization: 'none' | 'sanitized' | 'failed';
  /** The converted file when sanitization === 'sanitized'. */
  readonly sanitized: Buffer | null;
}

export function scanFile(body: Buffer, fileName: string, sha256: string, options: ResolvedOptions): ScanOutcome {
  let verdict = classify(body, fileName, sha256, options);
  const sanitization = sanitizationFor(fileName, options);
  // A file Core could not sanitize is blocked for that reason unless something else blocked it first.
  if (sanitization === 'failed' && verdict.result === 'Allowed') {
    verdict = { ...verdict, result: 'Blocked', blockedReason: 'Sanitization Failed' };
  }
  return {
    ...verdict,
    sanitization,
    sanitized: sanitization === 'sanitized' ? sanitize(body) : null,
  };
}

/** The sanitized copy (README.md, "Sanitization"). */
export function sanitize(body: Buffer): Buffer {
  const out = Buffer.concat([SANITIZED_MARKER, body]);
  const dashes = Buffer.alloc(EICAR_SIGNATURE.length, '-');
  for (let at = out.indexOf(EICAR_SIGNATURE, SANITIZED_MARKER.length); at !== -1; at = out.indexOf(EICAR_SIGNATURE, at + 1)) {
    dashes.copy(out, at);
  }
  return out;
}

type Verdict = Pick<ScanOutcome, 'code' | 'result' | 'blockedReason' | 'engines'>;

function classify(body: Buffer, fileName: string, sha256: string, options: ResolvedOptions): Verdict {
  const listed = options.hashes.find((h) => h.sha256.toLowerCase() === sha256);
  if (listed) return verdict(options, listed.code, () => listed.name);
  if (options.eicar && body.includes(EICAR_SIGNATURE)) {
    const engines = options.engines.map((e) => ({ name: e.name, code: 1, threat: e.eicarName }));
    return { code: 1, result: 'Blocked', blockedReason: labelOf(1), engines };
  }
  const lowerName = fileName.toLowerCase();
  for (const rule of options.resultRules) {
    if (rule.filenameSuffix !== undefined && !lowerName.endsWith(rule.filenameSuffix.toLowerCase())) continue;
    if (rule.minSize !== undefined && body.length < rule.minSize) continue;
    if (rule.contains !== undefined && !body.includes(Buffer.from(rule.contains, 'latin1'))) continue;
    const base = verdict(options, rule.code, (engine) => rule.threat ?? `${engine}.${labelOf(rule.code).replace(/[^A-Za-z0-9]+/g, '_')}`);
    const result = rule.result ?? base.result;
    return {
      ...base,
      result,
      blockedReason: result === 'Allowed' ? '' : (rule.blockedReason ?? base.blockedReason),
    };
  }
  return verdict(options, 0, () => '');
}

function verdict(options: ResolvedOptions, code: number, threatOf: (engine: string) => string): Verdict {
  const engineCode = engineCodeFor(code);
  const engines = options.engines.map((e) => ({
    name: e.name,
    code: engineCode,
    // §3: threat_found names a detection for engine results 1/2 (and 22); else empty or error text.
    threat: [1, 2, 22].includes(engineCode) ? threatOf(e.name) : engineCode === 3 ? 'engine error' : '',
  }));
  const result = defaultPolicyResult(code);
  return { code, result, blockedReason: result === 'Blocked' ? labelOf(code) : '', engines };
}

function sanitizationFor(fileName: string, options: ResolvedOptions): ScanOutcome['sanitization'] {
  const lower = fileName.toLowerCase();
  const { sanitize: s } = options;
  if (s.failSuffixes.some((x) => lower.endsWith(x.toLowerCase()))) return 'failed';
  if (s.all || s.filenameSuffixes.some((x) => lower.endsWith(x.toLowerCase()))) return 'sanitized';
  return 'none';
}
