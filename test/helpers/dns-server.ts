/**
 * A minimal authoritative DNS responder on 127.0.0.1 (UDP) that the test controls: A queries for
 * known names get the configured addresses and TTL; everything else gets an empty NOERROR answer.
 * RFC 1035 §4.1 message format, only what A/AAAA lookups need.
 */
import { createSocket, type Socket } from 'node:dgram';

export interface TestDns {
  readonly server: string;
  set(name: string, addresses: string[], ttl?: number): void;
  queries: string[];
  close(): Promise<void>;
}

export async function startTestDns(): Promise<TestDns> {
  const records = new Map<string, { addresses: string[]; ttl: number }>();
  const queries: string[] = [];
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    let pos = 12;
    const labels: string[] = [];
    while (pos < msg.length && msg[pos] !== 0) {
      const len = msg[pos]!;
      labels.push(msg.toString('ascii', pos + 1, pos + 1 + len));
      pos += len + 1;
    }
    pos += 1;
    const qtype = msg.readUInt16BE(pos);
    const question = msg.subarray(12, pos + 4);
    const name = labels.join('.').toLowerCase();
    queries.push(`${name}/${qtype}`);
    const entry = qtype === 1 ? records.get(name) : undefined;
    const answers = (entry?.addresses ?? []).map((a) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the name in the question
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(entry!.ttl, 6);
      rr.writeUInt16BE(4, 10);
      a.split('.').forEach((octet, i) => rr.writeUInt8(Number(octet), 12 + i));
      return rr;
    });
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8180, 2); // response, recursion desired + available, NOERROR
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return {
    server: `127.0.0.1:${socket.address().port}`,
    set(name, addresses, ttl = 1) {
      records.set(name.toLowerCase(), { addresses, ttl });
    },
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
