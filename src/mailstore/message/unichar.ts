// UTF-8 validity of byte strings, after Dovecot 2.3.19.1 src/lib/unichar.c
// (uni_utf8_get_valid_data, uni_utf8_partial_strlen_n, uni_utf8_char_bytes).
// Part of ../message.ts (see its top comment).

/** Bytes, one char per byte (latin1). */
export type Bytes = string

/** U+FFFD in UTF-8. */
export const REPLACEMENT_CHAR: Bytes = '\xEF\xBF\xBD'

const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const UTF8_LOOSE = new TextDecoder('utf-8', { ignoreBOM: true })

/** uni_utf8_get_valid_data: invalid UTF-8 runs become one U+FFFD. */
export function validUtf8(b: Bytes): string {
  const buf = Buffer.from(b, 'latin1')
  try {
    return UTF8_STRICT.decode(buf)
  } catch {
    return UTF8_LOOSE.decode(buf).replace(/\uFFFD+/g, '\uFFFD')
  }
}

/** uni_utf8_partial_strlen_n: the length up to a last character that needs more bytes than there are. */
export function completeUtf8Length(b: Bytes): number {
  let i = 0
  for (let n = 0; i < b.length; i += n) {
    n = utf8CharBytes(b.charCodeAt(i))
    if (i + n > b.length) break
  }
  return i
}

/** uni_utf8_char_bytes: the length a lead byte announces (1 for ASCII and invalid bytes). */
function utf8CharBytes(byte: number): number {
  if (byte < 0xc2 || byte >= 0xfe) return 1
  return byte < 0xe0 ? 2 : byte < 0xf0 ? 3 : byte < 0xf8 ? 4 : byte < 0xfc ? 5 : 6
}
