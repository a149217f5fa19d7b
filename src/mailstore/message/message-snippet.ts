// The snippet, after Dovecot 2.3.19.1 src/lib-mail/message-snippet.c (snippet_generate).
// Part of ../message.ts (see its top comment).

/** C isspace() in the C locale. */
const isSpace = (c: string): boolean => c === ' ' || (c >= '\t' && c <= '\r')

interface SnippetText {
  text: string
  left: number
}

/**
 * snippet_generate: whitespace runs become one space (none leading or trailing), at most
 * maxChars characters (UTF-8 code points) counting those spaces; lines starting
 * with '>' go to a separate quoted snippet that is used (as '>' + text) only when there is
 * no other text. NULs and byte order marks are skipped.
 */
export function snippetOf(text: string, maxChars: number): string {
  const main: SnippetText = { text: '', left: maxChars }
  const quoted: SnippetText = { text: '', left: maxChars - 1 }
  let state: 'newline' | 'normal' | 'quoted' = 'newline'
  let addWhitespace = false
  let target = main
  const add = (c: string): void => {
    if (c === '\ufeff' || c === '\0') return
    if (isSpace(c)) {
      if (target.text !== '') addWhitespace = true
      if (c === '\n') state = 'newline'
      return
    }
    if (target.left === 0) return
    target.left--
    if (addWhitespace) {
      if (target.left === 0) return
      target.text += ' '
      addWhitespace = false
      target.left--
    }
    target.text += c
  }
  const chars = text[Symbol.iterator]()
  for (let next = chars.next(); !next.done && main.left > 0; next = chars.next()) {
    if (state === 'newline') {
      state = next.value === '>' ? 'quoted' : 'normal'
      target = state === 'quoted' ? quoted : main
      if (state === 'quoted') next = chars.next() // the '>' itself is not content
      if (next.done === true) break
    }
    add(next.value)
  }
  const trim = (s: string): string => s.replace(/^[ \t\n\v\f\r]+/, '')
  if (main.text !== '') return trim(main.text)
  return quoted.text !== '' ? '>' + trim(quoted.text) : ''
}
