/**
 * A parsed view of a header block; the original bytes live beside it, as the block's latin1 text that
 * gives them back exactly (STYLE.md "Keep the original bytes").
 */
export interface HeaderField {
  /** As the peer wrote it (case kept). */
  readonly name: string;
  readonly value: string;
}

/** Up to this many fields, lookups (get, getAll, has, tokens) scan them instead of building the index. */
const LINEAR_LOOKUP_MAX = 16;

/** RFC 7230 §3.2: field names are case-insensitive tokens (ASCII), so ASCII folding is exact. */
function sameName(a: string, b: string): boolean {
  if (a === b) return true;
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y && (x | 0x20) !== (y | 0x20)) return false;
    // Equal once folded: only letters may differ by 0x20 ('@' and '`' must not match).
    if (x !== y && ((x | 0x20) < 0x61 || (x | 0x20) > 0x7a)) return false;
  }
  return true;
}

/** Case-insensitive lookup over header fields in their original order. */
export class HeaderList {
  readonly fields: readonly HeaderField[];
  #byName: Map<string, string[]> | undefined;

  constructor(fields: readonly HeaderField[]) {
    this.fields = fields;
  }

  #index(): Map<string, string[]> {
    if (this.#byName === undefined) {
      this.#byName = new Map();
      for (const field of this.fields) {
        const key = field.name.toLowerCase();
        const values = this.#byName.get(key);
        if (values === undefined) this.#byName.set(key, [field.value]);
        else values.push(field.value);
      }
    }
    return this.#byName;
  }

  /**
   * First value of the header, or undefined. A typical block has a handful of fields, and a scan
   * comparing lengths first is cheaper than building the lower-cased index (and lower-casing `name`)
   * for the few lookups a message gets; large blocks use the index.
   */
  get(name: string): string | undefined {
    if (this.#indexed()) return this.#index().get(name.toLowerCase())?.[0];
    for (const field of this.fields) {
      if (field.name.length === name.length && sameName(field.name, name)) return field.value;
    }
    return undefined;
  }

  /**
   * Every value of the header, in order; scanned like get() in a small block. Every HTTP head's
   * Content-Length is read this way, and every request's Allow (tokens): building the lower-cased
   * index of a small block for them was ≈ 4 % of a null-body REQMOD's JavaScript (bench/hot-path.ts).
   */
  getAll(name: string): readonly string[] {
    if (this.#indexed()) return this.#index().get(name.toLowerCase()) ?? [];
    const values: string[] = [];
    for (const field of this.fields) {
      if (field.name.length === name.length && sameName(field.name, name)) values.push(field.value);
    }
    return values;
  }

  has(name: string): boolean {
    return this.#indexed() ? this.#index().has(name.toLowerCase()) : this.get(name) !== undefined;
  }

  /** Comma-separated list headers (Allow, Connection) as lowercase tokens. */
  tokens(name: string): Set<string> {
    const out = new Set<string>();
    for (const value of this.getAll(name)) addTokens(out, value);
    return out;
  }

  /** Only blocks of more than LINEAR_LOOKUP_MAX fields are looked up through the index. */
  #indexed(): boolean {
    return this.fields.length > LINEAR_LOOKUP_MAX;
  }
}

function addTokens(out: Set<string>, value: string): void {
  for (let start = 0; ; ) {
    const comma = value.indexOf(',', start);
    const t = value.slice(start, comma === -1 ? value.length : comma).trim().toLowerCase();
    if (t !== '') out.add(t);
    if (comma === -1) return;
    start = comma + 1;
  }
}
