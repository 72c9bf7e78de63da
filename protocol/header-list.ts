/** A parsed view of a header block; the raw bytes live beside it (STYLE.md "Keep the original bytes"). */
export interface HeaderField {
  /** As the peer wrote it (case kept). */
  readonly name: string;
  readonly value: string;
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

  /** First value of the header, or undefined. */
  get(name: string): string | undefined {
    return this.#index().get(name.toLowerCase())?.[0];
  }

  getAll(name: string): readonly string[] {
    return this.#index().get(name.toLowerCase()) ?? [];
  }

  has(name: string): boolean {
    return this.#index().has(name.toLowerCase());
  }

  /** Comma-separated list headers (Allow, Connection) as lowercase tokens. */
  tokens(name: string): Set<string> {
    const out = new Set<string>();
    for (const value of this.getAll(name)) {
      for (const token of value.split(',')) {
        const t = token.trim().toLowerCase();
        if (t !== '') out.add(t);
      }
    }
    return out;
  }
}
