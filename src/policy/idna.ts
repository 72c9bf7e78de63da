/**
 * Internationalized host names as requests carry them. Browsers and Squid send the A-label form
 * (RFC 5890 §2.3.2.1: `xn--` + Punycode, RFC 3492), so `bücher.example` arrives as
 * `xn--bcher-kva.example`; a host written with U-labels in a rule or list must be brought into
 * that form to meet it. node:url's domainToASCII is the WHATWG "domain to ASCII" (UTS #46
 * nontransitional processing: mapping, case folding, NFC, then Punycode), which is what browsers
 * apply, so `BÜCHER.example` and `faß.de` come out as they would send them.
 */
import { domainToASCII } from 'node:url';
import { isAscii } from '../../protocol/index.js';

// RFC 3490 §3.1: the four dots that separate labels (full stop, ideographic, fullwidth, halfwidth).
const LABEL_DOTS = /[.\u3002\uff0e\uff61]/;

/**
 * `bücher.example` → `xn--bcher-kva.example`. ASCII is returned as it is (the common case costs one
 * regex test). A glob is converted label by label, and a label holding `*` is kept as written: a
 * Punycode of `b*cher` would not mean "any run here". A name that is not a valid IDN is kept as
 * written too, so it never matches a request (and a list line holding it is a bad line).
 */
export function asciiHost(host: string): string {
  if (isAscii(host)) return host;
  if (!host.includes('*')) return domainToASCII(host) || host;
  return host
    .split(LABEL_DOTS)
    .map((label) => (label.includes('*') || isAscii(label) ? label : asciiLabel(label)))
    .join('.');
}

function asciiLabel(label: string): string {
  const ascii = domainToASCII(label);
  // A label alone can read as an IPv4 number (`１` → `0.0.0.1`): that is not a label.
  return ascii === '' || ascii.includes('.') ? label : ascii;
}

/**
 * Why a host or host glob can never meet a request, or undefined. Requests carry A-labels, and a
 * label with no A-label form keeps its non-ASCII here: a `*` inside a U-label (`b*ü`, whose
 * Punycode would hold the `*` as a character, not a wildcard) or a name that is no IDN. The
 * configuration refuses such rule entries, as list-files.ts refuses such list lines.
 */
export function hostProblem(host: string): string | undefined {
  const label = asciiHost(host.toLowerCase())
    .split(LABEL_DOTS)
    .find((l) => !isAscii(l));
  if (label === undefined) return undefined;
  return label.includes('*')
    ? `can never match: the label ${JSON.stringify(label)} mixes * with non-ASCII, which has no A-label (xn--) form, and requests carry A-labels; ` +
        'put the * in a label of its own (*.bücher.example) or list each name'
    : `can never match: ${JSON.stringify(label)} is not a valid internationalized host name (IDNA)`;
}
