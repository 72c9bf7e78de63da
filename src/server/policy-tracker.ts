/**
 * The policy stage of one transaction (src/policy): which list or rule applies, decided as early
 * as the facts allow.
 *
 *   header time   request attributes (client, user, method, host, URL, content type, declared
 *                 size, headers) → often enough: lists by host/URL, rules without file_type
 *   first bytes   SNIFF_BYTES of body (from the preview where there is one) → the file type
 *   end of body   the real size and, when the service has hash lists, the SHA-256
 *
 * Until a rule is chosen the first bytes are held (copies; fewer than SNIFF_BYTES in all), so
 * that streaming backends opened once it is chosen still get every byte. The SHA-256 is the
 * transaction's, computed once while the body arrives (for hash lists and the verdict cache).
 */
import {
  detectFileType,
  evaluatePolicy,
  SNIFF_BYTES,
  type BodyFacts,
  type CompiledRule,
  type PolicyOutcome,
  type RequestAttributes,
  type ServicePolicy,
} from '../policy/index.js';

const IMPLICIT_OUTCOMES = new WeakMap<ServicePolicy, PolicyOutcome>();

/**
 * Nothing to match against: the service's own rule, whatever the request (service-policy.ts). One
 * outcome object per policy, shared by its transactions (outcomes are never modified).
 */
function implicitOutcome(policy: ServicePolicy): PolicyOutcome {
  let outcome = IMPLICIT_OUTCOMES.get(policy);
  if (outcome === undefined) IMPLICIT_OUTCOMES.set(policy, (outcome = { kind: 'rule', rule: policy.rules[0]!, final: true }));
  return outcome;
}

/** The outcome before anything is decided, shared (outcomes are never modified). */
const PENDING: PolicyOutcome = Object.freeze({ kind: 'pending' });

export class PolicyTracker {
  readonly #policy: ServicePolicy;
  readonly #attributes: () => RequestAttributes;
  #outcome: PolicyOutcome = PENDING;
  /** Allocated on the first body bytes: most transactions never need it (no body, or no rules). */
  #sniff: Buffer | null = null;
  #sniffLength = 0;
  /** Body chunks seen while no rule is chosen yet, to replay into streams opened later. */
  #held: Buffer[] = [];

  constructor(policy: ServicePolicy, attributes: () => RequestAttributes) {
    this.#policy = policy;
    this.#attributes = attributes;
  }

  /** The scan rule chosen so far, if any (its streaming backends may open). */
  get scanRule(): CompiledRule | null {
    const o = this.#outcome;
    return o.kind === 'rule' && o.rule.action === 'scan' ? o.rule : null;
  }

  /** True when finish() needs the body's SHA-256: some hash list has entries. */
  get needsSha256(): boolean {
    return this.#policy.lists.needsSha256;
  }

  /** Headers are complete and a body follows. Returns the scan rule, if one is chosen already. */
  beginBody(): CompiledRule | null {
    this.#evaluate(false);
    return this.scanRule;
  }

  /**
   * Body bytes, before they go to the spool and streams. Returns the chunks to replay when this
   * chunk made a scan rule chosen (its streams open now), else null.
   */
  onBody(data: Buffer): { rule: CompiledRule; replay: Buffer[] } | null {
    // Settled at the head for good: no file type to learn, no bytes to hold for a later choice.
    if (this.#policy.onlyImplicitRule) return null;
    // The first bytes are kept whatever happens: the final evaluation needs the file type too.
    const sniffWasFull = this.#sniffLength >= SNIFF_BYTES;
    this.#sniff ??= Buffer.alloc(SNIFF_BYTES);
    if (!sniffWasFull) this.#sniffLength += data.copy(this.#sniff, this.#sniffLength, 0, SNIFF_BYTES - this.#sniffLength);
    // Chosen already, or waiting for the end (a size) rather than for bytes: nothing to redo.
    if (this.#outcome.kind !== 'pending' || sniffWasFull) return null;
    if (this.#sniffLength < SNIFF_BYTES) {
      this.#held.push(Buffer.from(data)); // a view of the socket buffer: copy
      return null;
    }
    this.#evaluate(false); // the file type is known now
    const replay = this.#held;
    this.#held = [];
    const rule = this.scanRule;
    return rule === null ? null : { rule, replay };
  }

  /**
   * The preview ended without ieof. True when the outcome is settled and needs no scan, so the
   * answer can go out now and the rest of the body is not needed (RFC 3507 §4.5).
   */
  settledAfterPreview(serviceAllows204: boolean): boolean {
    const o = this.#outcome;
    if (o.kind === 'pending' || !o.final) return false;
    const action = o.kind === 'list' ? o.action : o.rule.action;
    // An allow answered now can only be a 204 (§4.5 allows it after any preview): the body an
    // echo would need was never read.
    return action === 'block' || (action === 'allow' && serviceAllows204);
  }

  /**
   * The body is complete (`size` bytes; 0 or no body at all): the final outcome. `sha256()` gives
   * the body's digest, asked for only when needsSha256.
   */
  finish(size: number, answeredEarly: boolean, sha256: () => string | undefined): PolicyOutcome {
    if (answeredEarly) return this.#outcome; // decided on what was known then; final by construction
    if (this.#policy.onlyImplicitRule) return (this.#outcome = implicitOutcome(this.#policy));
    this.#held = [];
    const digest = this.needsSha256 && size > 0 ? sha256() : undefined;
    this.#evaluate(true, { size, ...(digest !== undefined && { sha256: digest }) });
    return this.#outcome;
  }

  #evaluate(complete: boolean, end: { size?: number; sha256?: string } = {}): void {
    if (this.#policy.onlyImplicitRule) {
      this.#outcome = implicitOutcome(this.#policy);
      return;
    }
    const sniffed = this.#sniff === null ? Buffer.alloc(0) : this.#sniff.subarray(0, this.#sniffLength);
    const fileType = detectFileType(sniffed, complete);
    const facts: BodyFacts = { complete, ...(fileType !== undefined && { fileType }), ...end };
    this.#outcome = evaluatePolicy(this.#policy, this.#attributes(), facts);
  }
}
