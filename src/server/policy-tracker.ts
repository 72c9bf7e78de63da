/**
 * The policy stage of one transaction (src/policy): which list or rule applies, decided as early
 * as the facts allow.
 *
 *   header time   request attributes (client, user, method, host, URL, content type, declared
 *                 size, headers) → often enough: lists by host/URL, rules without file_type
 *   first bytes   SNIFF_BYTES of body (from the preview where there is one) → the file type
 *   end of body   the real size and, when the service has hash lists, the SHA-256
 *
 * An encoded or multipart body wraps the file the user gets: its own first bytes say "gzip" or
 * "--boundary". When a rule looks at file types, the type then waits for the end, where the
 * transaction decodes and splits the body first (prepared-content.ts) and hands the types and
 * digests of what it holds to finish(); hash lists see those digests too.
 *
 * Until a rule is chosen the first bytes are held (copies; fewer than SNIFF_BYTES in all), so
 * that streaming backends opened once it is chosen still get every byte. The SHA-256 is the
 * transaction's, computed once while the body arrives (for hash lists and the verdict cache).
 */
import type { ContentFacts } from '../pipeline/prepared-content.js';
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

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

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
  /** The body's own first bytes are not its file type (encoded, multipart): wait for finish(). */
  #typeAtEnd = false;

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

  /**
   * True when an encoded or multipart body must be decoded and split before finish(): a rule
   * looks at file types, or a hash list could name the file inside, and the outcome is not final
   * yet (a final one cannot change with them: no hash lists, and no type still awaited).
   */
  get needsContentFacts(): boolean {
    const o = this.#outcome;
    if (o.kind !== 'pending' && o.final) return false;
    return !this.#policy.onlyImplicitRule && (this.#policy.usesFileType || this.#policy.lists.needsSha256);
  }

  /**
   * Headers are complete and a body follows. `wrapped`: the body is encoded or multipart, and
   * finish() will be given what it holds. Returns the scan rule, if one is chosen already.
   */
  beginBody(wrapped = false): CompiledRule | null {
    this.#typeAtEnd = wrapped && this.#policy.usesFileType;
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
    // Chosen already, or waiting for the end (a size, or the type of a wrapped body: no choice
    // can come before it) rather than for bytes: nothing to redo, nothing to hold.
    if (this.#outcome.kind !== 'pending' || sniffWasFull || this.#typeAtEnd) return null;
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
   * the body's digest, asked for only when needsSha256. `content`: what an encoded or multipart
   * body holds (contentFacts), when the transaction prepared it.
   */
  finish(size: number, answeredEarly: boolean, sha256: () => string | undefined, content?: ContentFacts): PolicyOutcome {
    if (answeredEarly) return this.#outcome; // decided on what was known then; final by construction
    if (this.#policy.onlyImplicitRule) return (this.#outcome = implicitOutcome(this.#policy));
    this.#held = [];
    const digest = this.needsSha256 && size > 0 ? sha256() : undefined;
    const end: Mutable<BodyFacts> = { complete: true, size };
    if (digest !== undefined) end.sha256 = digest;
    if (content !== undefined) {
      end.fileTypes = content.fileTypes;
      if (content.decodedSha256 !== undefined) end.decodedSha256 = content.decodedSha256;
      end.pieceSha256s = content.pieceSha256s;
    }
    this.#evaluate(true, end);
    return this.#outcome;
  }

  #evaluate(complete: boolean, end: Partial<BodyFacts> = {}): void {
    if (this.#policy.onlyImplicitRule) {
      this.#outcome = implicitOutcome(this.#policy);
      return;
    }
    const facts: Mutable<BodyFacts> = { complete, ...end };
    // Without what the body holds, its own first bytes (also at the end: a body prepared only
    // when a rule needs it, or never for an answer given early).
    if (facts.fileTypes === undefined && !(this.#typeAtEnd && !complete)) {
      const sniffed = this.#sniff === null ? Buffer.alloc(0) : this.#sniff.subarray(0, this.#sniffLength);
      const fileType = detectFileType(sniffed, complete);
      if (fileType !== undefined) facts.fileTypes = fileType === null ? [] : [fileType];
    }
    this.#outcome = evaluatePolicy(this.#policy, this.#attributes(), facts);
  }
}
