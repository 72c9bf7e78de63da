/**
 * Threat names in an upstream ICAP answer (shared/specs/icap-extensions.md §B; other-engines.md
 * §9): X-Infection-Found (`Type=0; Resolution=2; Threat=NAME;`), X-Violations-Found (a count,
 * then four folded lines per violation: file name, threat, problem id, resolution), X-Virus-ID
 * (one line). Type and Resolution values are logged by nobody and decide nothing: the drafts'
 * numbering is not confirmed across vendors.
 */
import { foldedHeaderLines, type HeaderList } from '../../../protocol/index.js';

/** The name used when an answer says "infected" or blocks without naming a threat. */
export const UPSTREAM_BLOCKED = 'upstream-blocked';

/** `Threat=` up to the terminating `;` (the draft: the name may contain spaces, never `;`). */
export function infectionFoundThreat(value: string): string | null {
  const match = /(?:^|;)\s*Threat=([^;]*)/i.exec(value);
  const name = match?.[1]?.trim() ?? '';
  return name === '' ? null : name;
}

export interface ViolationsFound {
  readonly count: number;
  /** The threat line of each violation given. */
  readonly threats: readonly string[];
}

/** Each X-Violations-Found occurrence: its count and the threat (second) line of each group of four. */
export function violationsFound(rawHead: Buffer): ViolationsFound[] {
  return foldedHeaderLines(rawHead, 'X-Violations-Found').map(([first = '', ...rest]) => {
    const count = /^\d{1,6}$/.test(first) ? Number(first) : 0;
    const threats: string[] = [];
    for (let i = 0; i + 1 < rest.length && threats.length < count; i += 4) threats.push(rest[i + 1]!);
    return { count, threats };
  });
}

export interface Detection {
  /** The answer carries an infection header. */
  readonly detected: boolean;
  /** Names in header order, de-duplicated; may be empty even when detected. */
  readonly threats: readonly string[];
}

/** Whether the answer's headers report a detection, and the names they give. */
export function detection(headers: HeaderList, rawHead: Buffer): Detection {
  const names: string[] = [];
  let detected = false;
  for (const value of headers.getAll('X-Infection-Found')) {
    detected = true;
    const name = infectionFoundThreat(value);
    if (name !== null) names.push(name);
  }
  for (const v of violationsFound(rawHead)) {
    if (v.count === 0) continue;
    detected = true;
    names.push(...v.threats);
  }
  for (const value of headers.getAll('X-Virus-ID')) {
    if (value.trim() === '') continue;
    detected = true;
    names.push(value.trim());
  }
  const threats = [...new Set(names.filter((n) => n !== '' && n !== '-'))];
  return { detected, threats };
}
