/** ICAP requests over real connections, sending the rest of the body after a 100 Continue. */
import { buildRequest, type RequestSpec } from './icap-messages.js';
import { TestClient } from './icap-client.js';
import type { ParsedResponse } from './icap-response.js';

/** A request as bytes: what is sent first, and the rest of the body after a 100 Continue. */
export interface WireRequest {
  first: Buffer;
  rest: Buffer;
}

/**
 * Sends `req` on `client` (or a new connection to `port`); after a 100 Continue sends the rest.
 * Returns every response read (the 100 included) and the connection, left open for the caller.
 */
export async function exchangeOnConnection(
  port: number,
  req: WireRequest,
  client?: TestClient,
): Promise<{ responses: ParsedResponse[]; client: TestClient }> {
  const c = client ?? (await TestClient.connect(port));
  c.write(req.first);
  const responses = [await c.read()];
  if (responses[0]!.status === 100) {
    c.write(req.rest);
    responses.push(await c.read());
  }
  return { responses, client: c };
}

/** One request over a fresh connection, closed afterwards: the final answer. */
export async function exchange(port: number, spec: RequestSpec): Promise<ParsedResponse> {
  const c = await TestClient.connect(port);
  try {
    const { responses } = await exchangeOnConnection(port, buildRequest(spec), c);
    return responses.at(-1)!;
  } finally {
    c.close();
  }
}
