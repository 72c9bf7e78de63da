/**
 * Rendering the configured block page template. The URL comes from the client, so HTML-escaping every
 * substituted value is a security property (no script injection into the page the user sees).
 */

/** The placeholders a template may use; any other `{{name}}` is left as written. */
export interface BlockPageValues {
  threat: string;
  url: string;
  transaction_id: string;
  service: string;
  reason: string;
  /** The multipart part(s) a threat was found in, e.g. `eicar.com`; empty otherwise. */
  part?: string;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes the five characters that matter in HTML text and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch] ?? ch);
}

const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;

/**
 * One pass over the template: a substituted value is never scanned again, so a URL containing
 * `{{reason}}` stays literal text.
 */
export function renderBlockPage(template: string, values: BlockPageValues): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => {
    // {{part}} is known even when no part is involved: it then reads as nothing.
    if (name === 'part') return escapeHtml(values.part ?? '');
    return Object.hasOwn(values, name) ? escapeHtml(values[name as keyof BlockPageValues] ?? '') : whole;
  });
}
