/** verdict/: backend results → decision → response plan. Pure: no I/O, no config, no logging. */
export {
  byList,
  byRule,
  decide,
  failureAction,
  notScanned,
  verdictLabel,
  FAILURE_ACTIONS,
  NO_BACKEND,
  type Decision,
  type ErrorEntry,
  type FailureAction,
  type FailurePolicy,
  type Replacement,
  type ThreatEntry,
  type VerdictLabel,
} from './decide.js';
export { planResponse, type PlanContext, type ResponsePlan } from './plan.js';
export { sanitizeThreatName, UNKNOWN_THREAT, MAX_THREAT_NAME_LENGTH } from './threat-name.js';
export { escapeHtml } from './block-page.js';
export { rewriteHttpHead, type HeadChanges } from './http-head-rewrite.js';
