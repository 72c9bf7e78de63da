/**
 * Active health checks: `zPING\0` → `PONG\0` per endpoint every health_interval_ms (spec §2: a
 * probe should use PING, which the admin cannot disable), and, with version_command, `zVERSION\0`
 * for the engine and signature DB version that feeds the ISTag. Checks of one endpoint never
 * overlap; the timer is unref'd so it never keeps the process alive.
 */
import type { ClamdBackendConfig } from './clamd-config.js';
import { runCommand, type CommandOutcome } from './clamd-connection.js';
import type { ClamdEndpoint } from './endpoint-pool.js';
import { isPong, parseVersionReply, PING_COMMAND, VERSION_COMMAND } from './protocol.js';

export class HealthChecker {
  readonly #endpoints: readonly ClamdEndpoint[];
  readonly #config: ClamdBackendConfig;
  readonly #running = new Map<ClamdEndpoint, Promise<void>>();
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  readonly #onRound: () => void;

  /** `onRound` runs after every round of checks (the backend re-derives its version there). */
  constructor(endpoints: readonly ClamdEndpoint[], config: ClamdBackendConfig, onRound: () => void) {
    this.#endpoints = endpoints;
    this.#config = config;
    this.#onRound = onRound;
  }

  /** PING on a fresh connection, bounded by connect_timeout_ms for the connect and again for PONG. */
  ping(endpoint: ClamdEndpoint): Promise<CommandOutcome> {
    const t = this.#config.connect_timeout_ms;
    return runCommand(endpoint.address, PING_COMMAND, { connectTimeoutMs: t, replyTimeoutMs: t });
  }

  /** Checks every endpoint now (and waits), then every health_interval_ms. */
  async start(): Promise<void> {
    await this.checkAll();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async checkAll(): Promise<void> {
    await Promise.all(this.#endpoints.map((e) => this.check(e)));
    if (!this.#stopped) this.#onRound();
  }

  /** One check of one endpoint; joins the running one if there is. */
  check(endpoint: ClamdEndpoint): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    let running = this.#running.get(endpoint);
    if (running === undefined) {
      running = this.#checkOnce(endpoint).finally(() => this.#running.delete(endpoint));
      this.#running.set(endpoint, running);
    }
    return running;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.checkAll().finally(() => this.#schedule());
    }, this.#config.health_interval_ms);
    this.#timer.unref();
  }

  async #checkOnce(endpoint: ClamdEndpoint): Promise<void> {
    const pong = await this.ping(endpoint);
    if (this.#stopped) return;
    if (pong.kind !== 'reply') {
      endpoint.markDown(pong.kind === 'silent' ? `${pong.message} (clamd queue full?)` : pong.message);
      return;
    }
    if (!isPong(pong.text)) {
      endpoint.markDown(`${endpoint.label} answered PING with ${JSON.stringify(pong.text.slice(0, 100))}`);
      return;
    }
    endpoint.markUp();
    if (!this.#config.version_command) return;
    const t = this.#config.connect_timeout_ms;
    const version = await runCommand(endpoint.address, VERSION_COMMAND, { connectTimeoutMs: t, replyTimeoutMs: t });
    // A failed VERSION keeps the last known text: health is PING's business.
    if (version.kind === 'reply') {
      const text = parseVersionReply(version.text);
      endpoint.version = text;
      endpoint.versionRefused = text === null;
    }
  }
}
