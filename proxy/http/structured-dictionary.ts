/**
 * A Dictionary Structured Field (RFC 8941 §3.2, parsed as §4.2.2), the
 * syntax of targeted cache-control fields such as CDN-Cache-Control
 * (RFC 9213 §2.1). Parsing is all or nothing: any syntax error makes the
 * whole field invalid (`undefined`), because RFC 8941 §4.2 requires it and
 * RFC 9213 then has the cache ignore the field.
 *
 * One leniency: keys are matched without regard to case (`MaX-aGe`), as
 * Cache-Control directive names are (RFC 9111 §5.2); the grammar itself
 * only has lower-case keys.
 */

export type BareItem =
  | { readonly type: 'integer'; readonly value: number }
  | { readonly type: 'decimal'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'token'; readonly value: string }
  | { readonly type: 'bytes'; readonly value: string }
  | { readonly type: 'boolean'; readonly value: boolean };

export type MemberValue = BareItem | { readonly type: 'inner-list'; readonly value: readonly BareItem[] };

export type StructuredDictionary = ReadonlyMap<string, MemberValue>;

class Invalid extends Error {}

export function parseDictionary(input: string): StructuredDictionary | undefined {
  try {
    return new Parser(input).dictionary();
  } catch (error) {
    if (error instanceof Invalid) return undefined;
    throw error;
  }
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

class Parser {
  #text: string;
  #at = 0;

  constructor(input: string) {
    // Leading and trailing spaces are discarded (RFC 8941 §4.2).
    this.#text = input.replace(/^ +| +$/g, '');
  }

  dictionary(): StructuredDictionary {
    const members = new Map<string, MemberValue>();
    while (!this.#done()) {
      const key = this.#key();
      let value: MemberValue = { type: 'boolean', value: true };
      if (this.#peek() === '=') {
        this.#at++;
        value = this.#peek() === '(' ? this.#innerList() : this.#bareItem();
      }
      this.#parameters();
      // A later member with the same key overrides an earlier one (RFC 8941 §4.2.2).
      members.set(key, value);
      this.#skip(/[ \t]/);
      if (this.#done()) break;
      if (this.#peek() !== ',') throw new Invalid();
      this.#at++;
      this.#skip(/[ \t]/);
      if (this.#done()) throw new Invalid(); // a trailing comma
    }
    return members;
  }

  #innerList(): MemberValue {
    this.#at++; // (
    const items: BareItem[] = [];
    for (;;) {
      this.#skip(/ /);
      if (this.#done()) throw new Invalid();
      if (this.#peek() === ')') {
        this.#at++;
        this.#parameters();
        return { type: 'inner-list', value: items };
      }
      items.push(this.#bareItem());
      this.#parameters();
      const next = this.#peek();
      if (next !== ' ' && next !== ')') throw new Invalid();
    }
  }

  #parameters(): void {
    while (this.#peek() === ';') {
      this.#at++;
      this.#skip(/ /);
      this.#key();
      if (this.#peek() === '=') {
        this.#at++;
        this.#bareItem();
      }
    }
  }

  #key(): string {
    const first = this.#peek();
    if (first === undefined || !/[a-zA-Z*]/.test(first)) throw new Invalid();
    const start = this.#at;
    this.#skip(/[a-zA-Z0-9_\-.*]/);
    return this.#text.slice(start, this.#at).toLowerCase();
  }

  #bareItem(): BareItem {
    const c = this.#peek();
    if (c === undefined) throw new Invalid();
    if (c === '-' || /[0-9]/.test(c)) return this.#number();
    if (c === '"') return this.#string();
    if (c === ':') return this.#bytes();
    if (c === '?') return this.#boolean();
    if (/[A-Za-z*]/.test(c)) return this.#token();
    throw new Invalid();
  }

  #number(): BareItem {
    const match = /^-?(\d{1,15})(\.(\d{1,3}))?/.exec(this.#text.slice(this.#at));
    if (match === null) throw new Invalid();
    const [text, whole = '', dot] = match;
    if (dot !== undefined && whole.length > 12) throw new Invalid();
    this.#at += text.length;
    // A number running on into more digits or a dot was too long or malformed.
    if (/[0-9.]/.test(this.#peek() ?? '')) throw new Invalid();
    return dot === undefined ? { type: 'integer', value: Number(text) } : { type: 'decimal', value: Number(text) };
  }

  #string(): BareItem {
    this.#at++; // "
    let value = '';
    for (;;) {
      const c = this.#text[this.#at++];
      if (c === undefined) throw new Invalid();
      if (c === '"') return { type: 'string', value };
      if (c === '\\') {
        const escaped = this.#text[this.#at++];
        if (escaped !== '"' && escaped !== '\\') throw new Invalid();
        value += escaped;
        continue;
      }
      const code = c.charCodeAt(0);
      if (code < 0x20 || code > 0x7e) throw new Invalid();
      value += c;
    }
  }

  #token(): BareItem {
    const start = this.#at++;
    while (this.#peek() !== undefined && (TCHAR.test(this.#peek()!) || this.#peek() === ':' || this.#peek() === '/')) this.#at++;
    return { type: 'token', value: this.#text.slice(start, this.#at) };
  }

  #bytes(): BareItem {
    const end = this.#text.indexOf(':', this.#at + 1);
    if (end === -1) throw new Invalid();
    const value = this.#text.slice(this.#at + 1, end);
    if (!/^[A-Za-z0-9+/=]*$/.test(value)) throw new Invalid();
    this.#at = end + 1;
    return { type: 'bytes', value };
  }

  #boolean(): BareItem {
    const digit = this.#text[this.#at + 1];
    if (digit !== '0' && digit !== '1') throw new Invalid();
    this.#at += 2;
    return { type: 'boolean', value: digit === '1' };
  }

  #peek(): string | undefined {
    return this.#text[this.#at];
  }

  #done(): boolean {
    return this.#at >= this.#text.length;
  }

  #skip(chars: RegExp): void {
    while (this.#at < this.#text.length && chars.test(this.#text[this.#at]!)) this.#at++;
  }
}
