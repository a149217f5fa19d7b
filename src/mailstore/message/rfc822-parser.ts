// RFC 822 tokens, after Dovecot 2.3.19.1 src/lib-mail/rfc822-parser.c (the parser,
// rfc822_parse_content_type) and, for Content-Type parameters, rfc2231-parser.c.
// Part of ../message.ts (see its top comment).

import libmime from 'libmime'
import type { Bytes } from './unichar.js'

/** An accumulating output string, like the C functions' string_t argument. */
export interface Out {
  v: string
}

/** rfc822_atext_chars: atext, 8-bit bytes included. */
const isAtext = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\xff]/.test(c)
/** IS_ATEXT_NON_TSPECIAL: atext less the MIME tspecials '/', '=', '?'. */
const isTokenChar = (c: string | undefined): boolean => isAtext(c) && c !== '/' && c !== '=' && c !== '?'
const isCrLfNul = (c: string | undefined): boolean => c === '\r' || c === '\n' || c === '\0'

/**
 * A port of rfc822-parser.c over a byte string. Like the C functions, the methods
 * return 1 when input is left, 0 at its end and -1 on a syntax error.
 */
export class Rfc822Parser {
  pos = 0

  /** `lastComment` collects the text of the last comment skipped, when not undefined. */
  constructor(
    readonly s: Bytes,
    public lastComment?: string,
  ) {}

  /** The current byte (a method, so that TypeScript does not narrow it across moves). */
  ch(): string | undefined {
    return this.s[this.pos]
  }

  get atEnd(): boolean {
    return this.pos >= this.s.length
  }

  more(): number {
    return this.atEnd ? 0 : 1
  }

  /** rfc822_skip_comment: nested parens, quoted pairs, folding (CR)LF removed from the text. */
  skipComment(): number {
    const s = this.s
    let level = 1
    let start = ++this.pos
    if (this.lastComment !== undefined) this.lastComment = ''
    for (; this.pos < s.length; this.pos++) {
      const c = s[this.pos]
      if (c === '(') level++
      else if (c === ')' && --level === 0) {
        this.#comment(start, this.pos)
        this.pos++
        return this.more()
      } else if (c === '\n') {
        this.#comment(start, this.pos > start && s[this.pos - 1] === '\r' ? this.pos - 1 : this.pos)
        start = this.pos + 1
      } else if (c === '\\') {
        if (++this.pos >= s.length) return -1
        if (isCrLfNul(s[this.pos])) this.pos--
        else {
          this.#comment(start, this.pos - 1)
          start = this.pos
        }
      }
    }
    return -1
  }

  #comment(from: number, to: number): void {
    if (this.lastComment !== undefined) this.lastComment += this.s.slice(from, to)
  }

  /** rfc822_skip_lwsp: spaces, tabs, CR, LF and comments. */
  skipLwsp(): number {
    while (!this.atEnd) {
      const c = this.ch()
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') this.pos++
      else if (c !== '(') break
      else if (this.skipComment() < 0) return -1
    }
    return this.more()
  }

  #run(out: Out, accept: (c: string | undefined) => boolean): void {
    const start = this.pos
    while (accept(this.ch())) this.pos++
    out.v += this.s.slice(start, this.pos)
  }

  atom(out: Out): number {
    if (!isAtext(this.ch())) return -1
    this.#run(out, isAtext)
    return this.skipLwsp()
  }

  /** rfc822_parse_dot_atom: LWSP allowed around the dots. */
  dotAtom(out: Out): number {
    for (;;) {
      if (!isAtext(this.ch())) return -1
      this.#run(out, isAtext)
      const ret = this.skipLwsp()
      if (ret <= 0 || this.ch() !== '.') return ret
      this.pos++
      out.v += '.'
      if (this.skipLwsp() <= 0) return -1
    }
  }

  mimeToken(out: Out): number {
    this.#run(out, (c) => isTokenChar(c) || c === '.')
    return this.skipLwsp()
  }

  /** rfc822_parse_quoted_string: quoted pairs unescaped, folding (CR)LF removed. */
  quotedString(out: Out): number {
    const s = this.s
    let start = ++this.pos
    for (; this.pos < s.length; this.pos++) {
      const c = s[this.pos]
      if (c === '"') {
        out.v += s.slice(start, this.pos++)
        return this.skipLwsp()
      } else if (c === '\n') {
        out.v += s.slice(start, this.pos > start && s[this.pos - 1] === '\r' ? this.pos - 1 : this.pos)
        start = this.pos + 1
      } else if (c === '\\') {
        if (++this.pos >= s.length) return -1
        if (isCrLfNul(s[this.pos])) this.pos--
        else {
          out.v += s.slice(start, this.pos - 1)
          start = this.pos
        }
      }
    }
    return -1
  }

  /** rfc822_parse_phrase: words (atoms with dots, quoted strings) joined by one space. */
  phrase(out: Out): number {
    if (this.atEnd) return 0
    if (this.ch() === '.') return -1
    for (;;) {
      const ret = this.ch() === '"' ? this.quotedString(out) : this.#atomOrDot(out)
      if (ret <= 0) return ret
      if (!isAtext(this.ch()) && this.ch() !== '"' && this.ch() !== '.') break
      out.v += ' '
    }
    return this.skipLwsp()
  }

  #atomOrDot(out: Out): number {
    this.#run(out, (c) => isAtext(c) || c === '.')
    return this.skipLwsp()
  }

  /** rfc822_parse_domain: after '@', a dot-atom or a [domain literal] kept with its backslashes. */
  domain(out: Out): number {
    this.pos++
    if (this.skipLwsp() <= 0) return -1
    return this.ch() === '[' ? this.#domainLiteral(out) : this.dotAtom(out)
  }

  #domainLiteral(out: Out): number {
    const s = this.s
    let start = this.pos++
    for (; this.pos < s.length; this.pos++) {
      const c = s[this.pos]
      if (c === '[') return -1
      if (c === ']') {
        out.v += s.slice(start, ++this.pos)
        return this.skipLwsp()
      } else if (c === '\n') {
        out.v += s.slice(start, this.pos > start && s[this.pos - 1] === '\r' ? this.pos - 1 : this.pos)
        start = this.pos + 1
      } else if (c === '\\') {
        if (++this.pos >= s.length) return -1
        if (isCrLfNul(s[this.pos])) {
          out.v += s.slice(start, this.pos)
          start = this.pos--
        }
      }
    }
    return -1
  }
}

/** rfc822_parse_content_type: "type/subtype" as Dovecot keeps it ("" or a bare type when broken); ok = parameters may follow. */
export function contentType(value: Bytes): { value: string; ok: boolean } {
  const p = new Rfc822Parser(value)
  if (p.skipLwsp() <= 0) return { value: '', ok: false }
  const type: Out = { v: '' }
  if (p.mimeToken(type) <= 0 || type.v === '') return { value: type.v, ok: false }
  if (p.ch() !== '/') return { value: '', ok: false }
  p.pos++
  if (p.skipLwsp() <= 0) return { value: '', ok: false }
  const subtype: Out = { v: '' }
  p.mimeToken(subtype)
  if (subtype.v === '' || (!p.atEnd && p.ch() !== ';')) return { value: '', ok: false }
  return { value: `${type.v}/${subtype.v}`, ok: true }
}

/** A Content-Type parameter; rfc2231-parser.c keeps an extended one (`name*=utf-8''…`) under "name*", so it is not found. */
export function contentParam(value: Bytes, name: string): string | undefined {
  if (new RegExp(`[;\\s]${name}\\*(\\d+\\*)?\\s*=`, 'i').test(value)) return undefined
  return libmime.parseHeaderValue(value).params[name]
}
