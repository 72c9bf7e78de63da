/**
 * Which Content-Transfer-Encoding a part declares that a receiver may undo before it stores the
 * file, and the streaming decoder for it.
 *
 * RFC 7578 §4.7 deprecates Content-Transfer-Encoding in multipart/form-data, but receivers built
 * on MIME libraries (javax.mail's MimeMultipart and the like) still honour it and store the
 * decoded bytes. So a part declaring base64 or
 * quoted-printable gets its decoded form scanned beside the part as sent (spool-parts.ts).
 * 7bit, 8bit and binary (RFC 2045 §6.2) are identity encodings: nothing to decode.
 */
import { Base64Decoder } from './base64-decoder.js';
import type { PartHeaders } from './part-headers.js';
import { QuotedPrintableDecoder } from './quoted-printable-decoder.js';

export type TransferDecoding = 'base64' | 'quoted-printable';

/** Decodes a part slice by slice; every returned buffer is fresh (a spool may keep it as is). */
export interface TransferDecoder {
  write(chunk: Uint8Array): Buffer;
  /** The data is over: what the decoder still held. */
  end(): Buffer;
}

const DECODABLE: ReadonlySet<string> = new Set<TransferDecoding>(['base64', 'quoted-printable']);

/**
 * The decodings a part's headers call for, in the order declared, each once; usually none.
 * `mechanism` is a case-insensitive token (RFC 2045 §6.1). Read leniently, since receivers
 * differ and a miss leaves encoded content unscanned while a false hit only costs a scan:
 * every Content-Transfer-Encoding field counts (a receiver may take the first or the last),
 * and any token in its value, so `base64 (comment)`, `"base64"` or `base64; x=y` still count.
 */
export function transferDecodings(headers: PartHeaders): TransferDecoding[] {
  const found = new Set<TransferDecoding>();
  for (const [name, value] of headers.raw) {
    if (name.toLowerCase() !== 'content-transfer-encoding') continue;
    for (const token of value.toLowerCase().split(/[^a-z0-9!#$%&'*+\-.^_`{|}~]+/)) {
      if (DECODABLE.has(token)) found.add(token as TransferDecoding);
    }
  }
  return [...found];
}

export function createTransferDecoder(encoding: TransferDecoding): TransferDecoder {
  return encoding === 'base64' ? new Base64Decoder() : new QuotedPrintableDecoder();
}
