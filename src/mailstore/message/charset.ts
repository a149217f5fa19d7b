// Charset conversion to UTF-8, after Dovecot 2.3.19.1 src/lib-charset/charset-utf8.c and
// charset-iconv.c, with iconv-lite in place of glibc iconv.
// Part of ../message.ts (see its top comment).

import iconv from 'iconv-lite'
import { type Bytes, REPLACEMENT_CHAR, validUtf8 } from './unichar.js'

/** charset_is_utf8: these names are read as UTF-8 without iconv. */
const isUtf8Charset = (charset: string): boolean => /^(us-ascii|ascii|utf-8|utf8)$/i.test(charset)

/** charset_to_utf8_begin: an unknown charset is read as UTF-8 (message-header-decode.c, message-decoder.c). */
export const readsAsUtf8 = (charset: string): boolean => isUtf8Charset(charset) || !iconv.encodingExists(charset)

/**
 * Appends bytes in a charset as text. Through iconv, the bytes of an unfinished character
 * at the end wait for more input, which never comes (charset-iconv.c, EINVAL). Read as
 * UTF-8, they do not start with a second U+FFFD right after one (unichar.c
 * output_add_replacement_char looks at the output).
 */
export function appendText(out: string, b: Bytes, charset = 'UTF-8'): string {
  if (!readsAsUtf8(charset)) return out + iconv.getDecoder(charset).write(Buffer.from(b, 'latin1'))
  const text = validUtf8(b)
  const replaced = text.startsWith('\uFFFD') && !b.startsWith(REPLACEMENT_CHAR)
  return replaced && out.endsWith('\uFFFD') ? out + text.slice(1) : out + text
}
