/** One ICAP request over a fresh connection: sends it (the rest after a 100 Continue) and returns the final answer. */
import { buildRequest, type RequestSpec } from './icap-messages.js';
import { TestClient } from './icap-client.js';
import type { ParsedResponse } from './icap-response.js';

export async function exchange(port: number, spec: RequestSpec): Promise<ParsedResponse> {
  const req = buildRequest(spec);
  const c = await TestClient.connect(port);
  try {
    c.write(req.first);
    let r = await c.read();
    if (r.status === 100) {
      c.write(req.rest);
      r = await c.read();
    }
    return r;
  } finally {
    c.close();
  }
}
