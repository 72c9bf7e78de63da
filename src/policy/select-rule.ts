/**
 * First match wins, as early as the facts allow. Rules are tried in order; a rule whose answer
 * depends on a body fact not known yet stops the walk — a later rule cannot be chosen while an
 * earlier one might still match — and the caller asks again with more facts (after the first
 * bytes, at the end of the body). With every fact known, every rule answers true or false.
 */
import type { BodyFacts, RequestAttributes } from './attributes.js';
import type { Tristate } from './conditions.js';

export interface SelectableRule {
  evaluate(attrs: RequestAttributes, facts: BodyFacts): Tristate;
  readonly usesSize: boolean;
}

export type Selection<R> =
  | {
      readonly kind: 'matched';
      readonly rule: R;
      readonly index: number;
      /**
       * The choice rests on a declared Content-Length (this rule or an earlier one compared a
       * size before the body's real size was known); the real size at the end may change it.
       */
      readonly onDeclaredSize: boolean;
    }
  | { readonly kind: 'pending' }
  | { readonly kind: 'none' };

export function selectRule<R extends SelectableRule>(rules: readonly R[], attrs: RequestAttributes, facts: BodyFacts): Selection<R> {
  let sizeSeen = false;
  for (const [index, rule] of rules.entries()) {
    sizeSeen ||= rule.usesSize;
    const result = rule.evaluate(attrs, facts);
    if (result === undefined) return { kind: 'pending' };
    if (result) return { kind: 'matched', rule, index, onDeclaredSize: sizeSeen && facts.size === undefined };
  }
  return { kind: 'none' };
}
