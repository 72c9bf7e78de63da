/**
 * The end-to-end trio most Squid tests need, started in order and stopped in reverse by one
 * stop(): a local origin (origin-server.ts), the compiled icap-bridge (child-server.ts), and a
 * private Squid (squid.ts) whose ICAP lines point at that icap-bridge. If a later piece fails to
 * start, the ones already running are stopped before the error is thrown.
 */
import { expect } from 'vitest';
import { startChildServer, type ChildServer } from './child-server.js';
import { expectedSha256, ORIGIN_FILES, startOriginServer, type OriginOptions, type OriginServer } from './origin-server.js';
import { requireSquid, squidVersion, startSquid, type ProxyResult, type Squid, type SquidOptions } from './squid.js';

export interface SquidStackOptions {
  /** icap-bridge YAML at the top level (startChildServer's `extraYaml`). */
  bridgeYaml?: string;
  /** icap-bridge YAML inside `server:` (startChildServer's `serverYaml`), e.g. a `tls:` block. */
  serverYaml?: string;
  /** Squid's options besides the ICAP port, which is always icap-bridge's. */
  squid?: Omit<SquidOptions, 'icapPort'>;
  /** The query parameter that makes each URL from urlFor() unique (default `n`). */
  urlTag?: string;
  /** The origin's options (e.g. a cacheable Cache-Control). */
  origin?: OriginOptions;
}

export interface SquidStack {
  readonly origin: OriginServer;
  readonly bridge: ChildServer;
  readonly squid: Squid;
  /** `path` on the origin with a unique query, so each request's access record can be found. */
  urlFor(path: string): string;
  /** icap-bridge's access records so far. */
  records(): Record<string, unknown>[];
  /** Squid first (icap-bridge's graceful stop waits for Squid's persistent ICAP connections), then icap-bridge, then the origin. */
  stop(): Promise<void>;
}

export async function startSquidStack(options: SquidStackOptions = {}): Promise<SquidStack> {
  requireSquid();
  console.log(`squid ${await squidVersion()}`);
  const running: { stop(): Promise<unknown> }[] = [];
  const stop = async (): Promise<void> => {
    while (running.length > 0) await running.pop()!.stop();
  };
  try {
    const origin = await startOriginServer(options.origin);
    running.push(origin);
    const bridge = await startChildServer(options.bridgeYaml, options.serverYaml);
    running.push(bridge);
    const squid = await startSquid({ ...options.squid, icapPort: bridge.port });
    running.push(squid);
    const tag = options.urlTag ?? 'n';
    let n = 0;
    return {
      origin,
      bridge,
      squid,
      urlFor: (path) => `${origin.base}${path}?${tag}=${++n}`,
      records: () => bridge.accessRecords(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The download of origin file `path` arrived whole, with no error, byte-identical. */
export function expectIntactDownload(r: ProxyResult, path: string): void {
  expect(r.error, path).toBeNull();
  expect(r.status, path).toBe(200);
  expect(r.complete, path).toBe(true);
  expect(r.bytes, path).toBe(ORIGIN_FILES[path]!.size);
  expect(r.sha256, path).toBe(expectedSha256(path));
}
