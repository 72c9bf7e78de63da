/**
 * The signed batch report, `GET /file/batch/{batch_id}/certificate` (specs/metadefender-core-api.md
 * §7): `text/plain` YAML holding the batch result, a hex `signature` and the signing `certificate`
 * (PEM). Pure apart from node:crypto.
 *
 * What is signed is not published. We check what the emulator does (emulators/metadefender/
 * batches.ts): ECDSA P-256 over SHA-256 of `JSON.stringify` of the document without `signature`
 * and `certificate`, keys in document order. Both unpinned details are taken either way:
 * - `certificate` may be a public key (SPKI PEM) or an X.509 certificate PEM;
 * - the signature may be DER (what node:crypto makes) or raw r‖s (IEEE P1363, 64 bytes for P-256).
 * A report we cannot check is `verified: false` with the reason; it never changes a verdict.
 */
import { createPublicKey, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { parse as parseYaml } from 'yaml';

export interface CertificateCheck {
  /** The report carried a signature. */
  readonly signed: boolean;
  /** The signature matched (true) or not (false); null when there was none to check. */
  readonly verified: boolean | null;
  /** Why not signed or not verified. */
  readonly detail?: string;
}

export function checkBatchCertificate(text: string, batchId: string): CertificateCheck {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return { signed: false, verified: null, detail: `signed report is not YAML: ${(err as Error).message.split('\n')[0]}` };
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return { signed: false, verified: null, detail: 'signed report is not a YAML mapping' };
  const { signature, certificate, ...content } = doc as Record<string, unknown>;
  if (typeof signature !== 'string' || signature.trim() === '') return { signed: false, verified: null, detail: 'report has no signature' };
  if (typeof certificate !== 'string' || certificate.trim() === '') return { signed: true, verified: false, detail: 'report has a signature but no certificate to check it with' };
  const hex = signature.trim();
  if (!/^(?:[0-9a-f]{2})+$/i.test(hex)) return { signed: true, verified: false, detail: 'signature is not hex' };

  let key: KeyObject;
  try {
    key = publicKeyOf(certificate);
  } catch (err) {
    return { signed: true, verified: false, detail: `certificate is not a usable PEM key: ${(err as Error).message}` };
  }
  const data = Buffer.from(JSON.stringify(content));
  const sig = Buffer.from(hex, 'hex');
  if (!matches(data, key, sig)) return { signed: true, verified: false, detail: 'signature does not match the report' };
  // A good signature over some other batch's report proves nothing about this one.
  if (content['batch_id'] !== batchId) return { signed: true, verified: false, detail: `signed report is for batch ${String(content['batch_id'])}` };
  return { signed: true, verified: true };
}

function publicKeyOf(pem: string): KeyObject {
  return /-----BEGIN CERTIFICATE-----/.test(pem) ? new X509Certificate(pem).publicKey : createPublicKey(pem);
}

function matches(data: Buffer, key: KeyObject, sig: Buffer): boolean {
  for (const dsaEncoding of ['der', 'ieee-p1363'] as const) {
    try {
      if (verify('sha256', data, { key, dsaEncoding }, sig)) return true;
    } catch {
      // Malformed for this encoding: try the other.
    }
  }
  return false;
}
