// RFC 2047 encoded words, after Dovecot 2.3.19.1 src/lib-mail/message-header-decode.c
// (message_header_decode_utf8) and, for Q encoding, quoted-printable.c.
// Part of ../message.ts (see its top comment).

import { base64Decode } from './base64.js'
import { appendText } from './charset.js'
import type { Bytes } from './unichar.js'

/**
 * message_header_decode_utf8: RFC 2047 words decoded one by one into UTF-8; text that is
 * only LWSP (CR/LF included) before an encoded word is dropped, other text is kept as is.
 */
export function decodeHeader(b: Bytes): string {
  let out = ''
  let start = 0
  for (let pos = 0; pos + 1 < b.length; ) {
    if (b[pos] !== '=' || b[pos + 1] !== '?') {
      pos++
      continue
    }
    if (pos !== start && !/^[ \t\r\n]*$/.test(b.slice(start, pos))) out = appendText(out, b.slice(start, pos))
    pos += 2
    const word = encodedWord(b, pos)
    if (word === undefined) {
      start = pos - 2
      continue
    }
    pos += word.length
    if (word.text !== '') out = appendText(out, word.text, word.charset)
    start = pos
  }
  return start < b.length ? appendText(out, b.slice(start)) : out
}

/** message_header_decode_encoded: `charset?Q|B?text?=` after "=?" (the first three '?' decide). */
function encodedWord(b: Bytes, pos: number): { charset: Bytes; text: Bytes; length: number } | undefined {
  const marks: number[] = []
  let i = pos
  for (; i < b.length && marks.length < 3; i++) if (b[i] === '?') marks.push(i)
  const [q1, q2, q3] = marks
  if (q1 === undefined || q2 === undefined || q3 === undefined || b[q3 + 1] !== '=') return undefined
  const text = b.slice(q2 + 1, q3)
  const encoding = b[q1 + 1]
  const decoded = encoding === 'q' || encoding === 'Q' ? qDecode(text) : encoding === 'b' || encoding === 'B' ? base64Decode(text) : undefined
  return decoded === undefined ? undefined : { charset: b.slice(pos, q1), text: decoded, length: q3 + 2 - pos }
}

const isHexDigit = (c: string | undefined): boolean => c !== undefined && /[0-9A-Fa-f]/.test(c)

/** quoted_printable_q_decode: '_' is a space, a bad "=XX" stays as is, "=" in the last two bytes ends decoding. */
function qDecode(s: Bytes): Bytes {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '_') out += ' '
    else if (c !== '=') out += c
    else if (i + 2 >= s.length) return out + s.slice(i)
    else if (isHexDigit(s[i + 1]) && isHexDigit(s[i + 2])) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16))
      i += 2
    } else out += c
  }
  return out
}
