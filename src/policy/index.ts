/**
 * policy/: per-service rules and allow/deny lists → which rule applies (scan with which
 * backends, allow, block) and which failure matrix. Pure: no sockets, no config loading, no
 * logging; the list files are read by the configuration loader and handed in as entries.
 */
export { requestAttributes, HEADER_SOURCES, type BodyFacts, type HeaderSource, type RequestAttributes } from './attributes.js';
export { coversWholeRepresentation, partialRange, type RangeHeadView } from './byte-range.js';
export { canonicalUrl, urlEntryProblem } from './url-forms.js';
export { hostProblem } from './idna.js';
export { detectFileType, FILE_TYPES, SNIFF_BYTES, type FileType } from './file-type.js';
export { compileGlob, globMatch } from './glob.js';
export { cidrProblem, compileAddressSet, normalizeAddress } from './ip-match.js';
export { entryKindOf, LIST_KEYS, parseListText, type ListEntryKind, type ListKey, type ParsedList } from './list-files.js';
export { CompiledLists, listsFingerprint, type ListFileData, type ListHit, type ListsConfig } from './lists.js';
export { HEADER_OPERATORS, RULE_ACTIONS, type HeaderConditionConfig, type RuleAction, type RuleConfig, type RuleMatchConfig } from './rule-config.js';
export { selectRule, type Selection } from './select-rule.js';
export {
  compileServicePolicy,
  evaluatePolicy,
  type CompiledRule,
  type PolicyOutcome,
  type ServicePolicy,
  type ServicePolicyConfig,
} from './service-policy.js';
export { decodeUsername, userCandidates } from './username.js';
