/**
 * Internationalized host names as requests carry them. Browsers and Squid send the A-label form
 * (RFC 5890 §2.3.2.1: `xn--` + Punycode, RFC 3492), so `bücher.example` arrives as
 * `xn--bcher-kva.example`; a host written with U-labels in a rule or list must be brought into
 * that form to meet it. node:url's domainToASCII is the WHATWG "domain to ASCII" (UTS #46
 * nontransitional processing: mapping, case folding, NFC, then Punycode), which is what browsers
 * apply, so `BÜCHER.example` and `faß.de` come out as they would send them.
 */
import { domainToASCII } from 'node:url';

const NON_ASCII = /[^\x00-\x7f]/;
// RFC 3490 §3.1: the four dots that separate labels (full stop, ideographic, fullwidth, halfwidth).
const LABEL_DOTS = /[.\u3002\uff0e\uff61]/;

/**
 * `bücher.example` → `xn--bcher-kva.example`. ASCII is returned as it is (the common case costs one
 * regex test). A glob is converted label by label, and a label holding `*` is kept as written: a
 * Punycode of `b*cher` would not mean "any run here". A name that is not a valid IDN is kept as
 * written too, so it never matches a request (and a list line holding it is a bad line).
 */
export function asciiHost(host: string): string {
  if (!NON_ASCII.test(host)) return host;
  if (!host.includes('*')) return domainToASCII(host) || host;
  return host
    .split(LABEL_DOTS)
    .map((label) => (label.includes('*') || !NON_ASCII.test(label) ? label : asciiLabel(label)))
    .join('.');
}

function asciiLabel(label: string): string {
  const ascii = domainToASCII(label);
  // A label alone can read as an IPv4 number (`１` → `0.0.0.1`): that is not a label.
  return ascii === '' || ascii.includes('.') ? label : ascii;
}
