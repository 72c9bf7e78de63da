/**
 * clamd's active health check, run by the generic pool every health_interval_ms and after a lost
 * connection: `zPING\0` → `PONG\0` (spec §2: a probe should use PING, which the admin cannot
 * disable), then, with version_command, `zVERSION\0` for the engine and signature DB version
 * that feeds the ISTag.
 */
import type { ClamdBackendConfig } from './clamd-config.js';
import { runCommand, type CommandOutcome } from './clamd-connection.js';
import type { ClamdEndpoint } from './clamd-endpoint.js';
import { isPong, parseVersionReply, PING_COMMAND, VERSION_COMMAND } from './protocol.js';

type Timeouts = Pick<ClamdBackendConfig, 'connect_timeout_ms'>;

/** PING on a fresh connection, bounded by connect_timeout_ms for the connect and again for PONG. */
export function ping(endpoint: ClamdEndpoint, config: Timeouts, signal?: AbortSignal): Promise<CommandOutcome> {
  const t = config.connect_timeout_ms;
  return runCommand(endpoint.address, PING_COMMAND, { connectTimeoutMs: t, replyTimeoutMs: t }, signal);
}

/** True when the endpoint answers PONG; records its VERSION on the way. */
export async function checkClamd(endpoint: ClamdEndpoint, config: Timeouts & Pick<ClamdBackendConfig, 'version_command'>, signal: AbortSignal): Promise<boolean> {
  const pong = await ping(endpoint, config, signal);
  if (pong.kind !== 'reply' || !isPong(pong.text)) return false;
  if (!config.version_command || signal.aborted) return true;
  const t = config.connect_timeout_ms;
  const version = await runCommand(endpoint.address, VERSION_COMMAND, { connectTimeoutMs: t, replyTimeoutMs: t }, signal);
  // A failed VERSION keeps the last known text: health is PING's business.
  if (version.kind === 'reply') {
    const text = parseVersionReply(version.text);
    endpoint.version = text;
    endpoint.versionRefused = text === null;
  }
  return true;
}

/** `version` before any endpoint answered VERSION. */
export const VERSION_UNAVAILABLE = 'clamd unavailable';
/** `version` when VERSION is disabled in the config or refused by clamd. */
export const VERSION_UNKNOWN = 'clamd unknown';

/** The last label built, by reply: the ISTag reads the version on every answer (see deriveVersion). */
let lastReply: string | null = null;
let lastLabel = '';

function versionLabel(reply: string): string {
  if (reply !== lastReply) {
    lastReply = reply;
    lastLabel = `clamd ${reply}`;
  }
  return lastLabel;
}

/**
 * `clamd <VERSION reply>` of the first healthy endpoint, in configured order, e.g.
 * `clamd ClamAV 1.4.6/27001/Sat Nov 21 09:41:47 2026`: the DB version is part of it, so the
 * ISTag changes with the signatures. null = nothing new (keep the last known value).
 *
 * Read on every answer (the ISTag): it walks the endpoints in place and gives back the same string
 * while the reply is the same. Filtering them into arrays and building the string anew each time was
 * ≈ 1.3 % of the event loop's time with 1 MiB bodies via clamd (BENCHMARKS.md, Session 17).
 */
export function deriveVersion(
  endpoints: readonly { readonly target: { readonly id: string }; readonly resource: ClamdEndpoint }[],
  isHealthy: (id: string) => boolean,
  versionCommand: boolean,
): string | null {
  if (!versionCommand) return VERSION_UNKNOWN;
  for (const { target, resource } of endpoints) {
    if (!isHealthy(target.id)) continue;
    if (resource.version !== null) return versionLabel(resource.version);
    if (resource.versionRefused) return VERSION_UNKNOWN;
  }
  return null;
}
