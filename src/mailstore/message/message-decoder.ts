// Decoding one part's body to text, after Dovecot 2.3.19.1 src/lib-mail/message-decoder.c
// (as message_snippet_generate in message-snippet.c uses it), with libqp for
// quoted-printable. Part of ../message.ts (see its top comment).

import libqp from 'libqp'
import { base64Decode } from './base64.js'
import { appendText, readsAsUtf8 } from './charset.js'
import { findHeader, findLastHeader } from './message-header-parser.js'
import type { Part } from './message-parser.js'
import { type Out, Rfc822Parser, contentParam, contentType } from './rfc822-parser.js'
import { type Bytes, completeUtf8Length } from './unichar.js'

/**
 * message-decoder.c for one part, as message_snippet_generate uses it: the first
 * Content-Type decides (none = text/plain, text/html or application/xhtml+xml = HTML,
 * other non-text/ = skipped), the last Content-Transfer-Encoding decodes (unknown = skipped),
 * the charset parameter converts (default UTF-8).
 */
export function decodedBody(b: Bytes, part: Part): { text: string; html: boolean } | undefined {
  const ctValue = findHeader(part.headers, 'Content-Type')
  const ct = ctValue === undefined ? undefined : contentType(ctValue)
  const html = ct !== undefined && /^(text\/html|application\/xhtml\+xml)$/i.test(ct.value)
  if (ct !== undefined && !html && !/^text\//i.test(ct.value)) return undefined
  const bytes = decodeTransfer(b.slice(part.start, part.end), findLastHeader(part.headers, 'Content-Transfer-Encoding'))
  if (bytes === undefined) return undefined
  const charset = ct?.ok === true ? contentParam(ctValue!, 'charset') : undefined
  return { text: bodyText(bytes, charset ?? 'UTF-8'), html }
}

/**
 * A body in its charset as text. Read as UTF-8, an unfinished character at the end is
 * held back for input that never comes (charset-utf8.c charset_utf8_to_utf8), so it is lost.
 */
function bodyText(b: Bytes, charset: string): string {
  return appendText('', readsAsUtf8(charset) ? b.slice(0, completeUtf8Length(b)) : b, charset)
}

/** message_decoder_parse_cte: one token, optionally followed by ';'. */
function transferEncoding(value: Bytes): 'identity' | 'base64' | 'quoted-printable' | undefined {
  const p = new Rfc822Parser(value)
  p.skipLwsp()
  const token: Out = { v: '' }
  if (p.mimeToken(token) === 1) {
    // something follows the token: only ";" (parameters) is tolerated
    p.skipLwsp()
    if (p.ch() !== ';') return undefined
  }
  const name = token.v.toLowerCase()
  if (name === '7bit' || name === '8bit' || name === 'binary') return 'identity'
  return name === 'base64' || name === 'quoted-printable' ? name : undefined
}

function decodeTransfer(body: Bytes, cte: Bytes | undefined): Bytes | undefined {
  switch (cte === undefined ? 'identity' : transferEncoding(cte)) {
    case 'identity':
      return body
    case 'quoted-printable':
      return libqp.decode(Buffer.from(body, 'latin1')).toString('latin1')
    case 'base64':
      return base64Decode(body)
    default:
      return undefined
  }
}
