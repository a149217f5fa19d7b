// Choosing and summarising the body, after Dovecot 2.3.19.1
// src/lib-storage/index/index-mail.c (index_mail_find_first_text_mime_part,
// index_mail_write_body_snippet and, through message_snippet_generate, the decoding,
// HTML and snippet steps in message-decoder.ts, mail-html2text.ts and message-snippet.ts).
// Part of ../message.ts (see its top comment).

import { htmlToText } from './mail-html2text.js'
import { decodedBody } from './message-decoder.js'
import type { Part } from './message-parser.js'
import { snippetOf } from './message-snippet.js'
import type { Bytes } from './unichar.js'

/** index-mail.c BODY_SNIPPET_MAX_CHARS: characters (UTF-8 code points), not bytes. */
const BODY_SNIPPET_MAX_CHARS = 200

const typeOf = (part: Part): { type: string; subtype: string } | undefined => {
  if (part.type === undefined) return undefined
  const slash = part.type.indexOf('/')
  return slash < 0 ? { type: part.type, subtype: '' } : { type: part.type.slice(0, slash), subtype: part.type.slice(slash + 1) }
}

const ieq = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/**
 * index_mail_find_first_text_mime_part: a text part (or one without Content-Type);
 * in multipart/alternative the first text/plain, else the last text/html, else the last
 * other text/*, among its direct children only; in other multiparts the first usable child.
 */
function findTextPart(part: Part): Part | undefined {
  const t = typeOf(part)
  if (t === undefined || ieq(t.type, 'text')) return part
  if (!ieq(t.type, 'multipart')) return undefined
  if (!ieq(t.subtype, 'alternative')) {
    for (const child of part.children) {
      const found = findTextPart(child)
      if (found !== undefined) return found
    }
    return undefined
  }
  let html: Part | undefined
  let text: Part | undefined
  for (const child of part.children) {
    const c = typeOf(child)
    if (c !== undefined && !ieq(c.type, 'text')) continue
    if (c === undefined || ieq(c.subtype, 'plain')) return child
    if (ieq(c.subtype, 'html')) html = child
    else text = child
  }
  return html ?? text
}

/** index_mail_write_body_snippet: the snippet of the chosen text part, "" without one. */
export function bodySnippet(b: Bytes, root: Part): string {
  const part = findTextPart(root)
  const body = part === undefined ? undefined : decodedBody(b, part)
  if (body === undefined) return ''
  return snippetOf(body.html ? htmlToText(body.text) : body.text, BODY_SNIPPET_MAX_CHARS)
}
