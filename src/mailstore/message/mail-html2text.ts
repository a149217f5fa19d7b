// HTML to plain text, after Dovecot 2.3.19.1 src/lib-mail/mail-html2text.c (flags 0), with
// the html-entities package for its table of HTML 4 entity names.
// Part of ../message.ts (see its top comment).

import { decodeEntity } from 'html-entities'

const isHtmlSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n'

/** Dovecot's table is HTML 4's (html-entities' html4 level), except these two. */
const ENTITY_OVERRIDES: Readonly<Record<string, string>> = { lang: '\u27e8', rang: '\u27e9' }

/** html_entity_get_unichar: a named entity, &#nnn; or &#xhhh; (lower-case x only); unknown → nothing. */
function entityText(name: string): string {
  if (name.startsWith('#')) {
    const numeric = /^#(?:x([0-9A-Fa-f]+)|(\d+))$/.exec(name)
    const cp = numeric === null ? -1 : numeric[1] !== undefined ? parseInt(numeric[1], 16) : Number(numeric[2])
    return cp >= 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? String.fromCodePoint(cp) : ''
  }
  const ref = `&${name};`
  const decoded = ENTITY_OVERRIDES[name] ?? decodeEntity(ref, { level: 'html4' })
  return decoded === ref ? '' : decoded
}

type HtmlState = 'text' | 'tag' | 'dquoted' | 'squoted' | 'comment' | 'comment-end' | 'script' | 'style' | 'cdata'

export function htmlToText(html: string): string {
  return new HtmlToText(html).run()
}

/**
 * mail-html2text.c with flags 0: tags become a space, <style>/<script>/comments vanish,
 * entities are decoded, and text inside <blockquote> is marked with "\n>" so that the
 * snippet sees it as quoted. Input that ends inside a construct is dropped.
 */
class HtmlToText {
  #state: HtmlState = 'text'
  #quoteLevel = 0
  #addNewline = false
  readonly #out: string[] = []
  #last = ''

  constructor(readonly s: string) {}

  run(): string {
    const s = this.s
    for (let i = 0; i < s.length; i++) {
      const c = s[i]
      switch (this.#state) {
        case 'text': {
          const used = this.#text(i)
          if (used === 0) return this.#result()
          i += used - 1
          break
        }
        case 'tag':
          if (c === '"') this.#state = 'dquoted'
          else if (c === "'") this.#state = 'squoted'
          else if (c === '>') this.#tagEnd()
          break
        case 'dquoted':
        case 'squoted':
          if (c === (this.#state === 'dquoted' ? '"' : "'")) this.#state = 'tag'
          else if (c === '\\') i++
          break
        case 'comment':
          if (c === '-' && i + 1 === s.length) return this.#result()
          if (c === '-' && s[i + 1] === '-') {
            this.#state = 'comment-end'
            i++
          }
          break
        case 'comment-end':
          if (c === '>') this.#state = 'text'
          else if (!isHtmlSpace(c)) this.#state = 'comment'
          break
        case 'script':
        case 'style': {
          const close = `</${this.#state}>`
          const seen = s.slice(i, i + close.length).toLowerCase()
          if (c !== '<' || seen !== close.slice(0, seen.length)) break
          if (seen.length < close.length) return this.#result()
          this.#addSpace()
          this.#state = 'text'
          i += close.length - 1
          break
        }
        case 'cdata': {
          const seen = s.slice(i, i + 3)
          if (c === ']' && seen === ']]>'.slice(0, seen.length)) {
            if (seen.length < 3) return this.#result()
            this.#state = 'text'
            i += 2
          } else this.#emit(c)
          break
        }
      }
    }
    return this.#result()
  }

  /** How many characters from `at` on are used (0 = cut off, the rest is dropped); plain text goes out as a run. */
  #text(at: number): number {
    const c = this.s[at]
    if (c === '<') return this.#tagName(at + 1)
    if (c === '&') return this.#entity(at + 1)
    const run = /[^<&]*/y
    run.lastIndex = at
    this.#emit(run.exec(this.s)![0])
    return run.lastIndex - at
  }

  #emit(text: string): void {
    if (text === '') return
    this.#out.push(text)
    this.#last = text.charAt(text.length - 1)
  }

  #result(): string {
    return this.#out.join('')
  }

  /** mail_html2text_add_space: after anything but a space or a line break. */
  #addSpace(): void {
    if (this.#last !== '' && this.#last !== ' ' && this.#last !== '\n') this.#emit(' ')
  }

  #tagEnd(): void {
    this.#state = 'text'
    if (this.#quoteLevel > 0) this.#emit('\n>')
    else if (this.#addNewline) this.#emit('\n')
    this.#addNewline = false
    this.#addSpace()
  }

  #startsWithName(at: number, name: string): boolean {
    const after = this.s[at + name.length]
    return this.s.slice(at, at + name.length).toLowerCase() === name && (isHtmlSpace(after) || after === '>')
  }

  /** parse_tag_name: how many characters from '<' on are used (0 = the tag name is cut off). */
  #tagName(at: number): number {
    const s = this.s
    if (s.startsWith('!--', at)) return this.#enter('comment', 4)
    if (this.#startsWithName(at, 'script')) return this.#enter('script', 8)
    if (this.#startsWithName(at, 'style')) return this.#enter('style', 7)
    if (s.slice(at, at + 8).toLowerCase() === '![cdata[') return this.#enter('cdata', 9)
    if (this.#startsWithName(at, 'blockquote')) this.#quoteLevel++
    else if (this.#quoteLevel > 0 && s.slice(at, at + 12).toLowerCase() === '/blockquote>') {
      this.#quoteLevel--
      this.#addNewline = true
    } else if (s.length - at < 12 && !/[ \t\r\n>]/.test(s.slice(at))) return 0
    return this.#enter('tag', 1)
  }

  #enter(state: HtmlState, used: number): number {
    this.#state = state
    return used
  }

  /** parse_entity: "&name;" with a name of at most 9 characters; a broken one drops just the '&'. */
  #entity(at: number): number {
    const s = this.s
    let i = 0
    for (; at + i < s.length; i++) {
      if (isHtmlSpace(s[at + i]) || i >= 10) return 1
      if (s[at + i] === ';') break
    }
    if (at + i >= s.length) return 0
    this.#emit(entityText(s.slice(at, at + i)))
    return i + 2
  }
}
