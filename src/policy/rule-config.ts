/**
 * The shape of one policy rule as the configuration loader produces it (schema in
 * src/config/policy-schema.ts). Structural, so this module does not depend on the loader.
 */
import type { FailurePolicy } from '../verdict/index.js';
import type { FileType } from './file-type.js';
import type { HeaderSource } from './attributes.js';

export const RULE_ACTIONS = ['scan', 'allow', 'block'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

export const HEADER_OPERATORS = ['equals', 'contains', 'prefix', 'suffix'] as const;
export type HeaderOperator = (typeof HEADER_OPERATORS)[number];

/** `{ name, in?, <one operator>: value, case_sensitive? }` */
export type HeaderConditionConfig = {
  readonly name: string;
  /** Where to look; all three when absent. */
  readonly in?: readonly HeaderSource[] | undefined;
  readonly case_sensitive?: boolean | undefined;
} & { readonly [O in HeaderOperator]?: string | undefined };

export interface RuleMatchConfig {
  readonly client?: readonly string[] | undefined;
  readonly peer?: readonly string[] | undefined;
  readonly user?: readonly string[] | undefined;
  readonly method?: readonly string[] | undefined;
  readonly icap_method?: readonly ('REQMOD' | 'RESPMOD')[] | undefined;
  readonly host?: readonly string[] | undefined;
  readonly url?: readonly string[] | undefined;
  readonly content_type?: readonly string[] | undefined;
  readonly min_size?: number | undefined;
  readonly max_size?: number | undefined;
  readonly file_type?: readonly FileType[] | undefined;
  readonly headers?: readonly HeaderConditionConfig[] | undefined;
  /** The body is (true) or is not (false) a piece of a file: a 206 range, a partial PUT (byte-range.ts). */
  readonly partial?: boolean | undefined;
}

export interface RuleConfig {
  readonly name: string;
  readonly match?: RuleMatchConfig | undefined;
  readonly action: RuleAction;
  /** Scan rules only; the service's backends when absent. */
  readonly backends?: readonly string[] | undefined;
  /** Scan rules only; the service's on_error when absent. */
  readonly on_error?: FailurePolicy | undefined;
}
