/**
 * Failure injection decisions (README.md, "Failure injection"). A seeded PRNG makes a given config
 * inject the same faults in the same order, so a test that sets a rate below 1 is repeatable.
 */
import { forRoute, type Faults, type Route } from './config.js';

export class FaultPlan {
  #faults: Faults;
  #state: number;

  constructor(faults: Faults) {
    this.#faults = faults;
    this.#state = faults.seed >>> 0;
  }

  latencyMs(route: Route): number {
    return forRoute(this.#faults.latencyMs, route);
  }

  drop(route: Route): boolean {
    return this.#chance(forRoute(this.#faults.dropRate, route));
  }

  busy(route: Route): boolean {
    return this.#chance(forRoute(this.#faults.status503Rate, route));
  }

  /**
   * An injected error status other than 503 for this request, if any. 503 (busy) is decided
   * first and apart, so configs that only set it draw the same dice as before these existed.
   */
  errorStatus(route: Route): 500 | 502 | 429 | undefined {
    if (this.#chance(forRoute(this.#faults.status500Rate, route))) return 500;
    if (this.#chance(forRoute(this.#faults.status502Rate, route))) return 502;
    if (this.#chance(forRoute(this.#faults.status429Rate, route))) return 429;
    return undefined;
  }

  resetUpload(): boolean {
    return this.#chance(this.#faults.uploadResetRate);
  }

  malformed(route: Route): boolean {
    return this.#chance(forRoute(this.#faults.malformedJsonRate, route));
  }

  forget(): boolean {
    return this.#chance(this.#faults.unknownDataIdRate);
  }

  tamperCertificate(): boolean {
    return this.#chance(this.#faults.tamperedCertificateRate);
  }

  #chance(rate: number): boolean {
    if (rate <= 0) return false;
    if (rate >= 1) return true;
    return this.#next() < rate;
  }

  /** mulberry32: tiny, fast, good enough for fault dice. */
  #next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
}
