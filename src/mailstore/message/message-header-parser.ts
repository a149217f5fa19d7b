// Header fields, after Dovecot 2.3.19.1 src/lib-mail/message-header-parser.c
// (message_parse_header_next) and src/lib-storage/index/index-mail-headers.c
// (get_parsed_header). The header block itself is read by message-parser.ts.
// Part of ../message.ts (see its top comment).

import { type Bytes, REPLACEMENT_CHAR } from './unichar.js'

export interface Header {
  readonly name: Bytes
  /** After ':' and the LWSP that follows; folded lines joined with LF (CR dropped). */
  value: Bytes
}

/** index-mail-headers.c get_parsed_header: the first field of that name, NULs as U+FFFD. */
export function rawHeader(headers: readonly Header[], name: string): Bytes | undefined {
  return findHeader(headers, name)?.replaceAll('\0', REPLACEMENT_CHAR)
}

/** Header names match case-insensitively (the mail cache's field names are case-insensitive). */
export function findHeader(headers: readonly Header[], name: string): Bytes | undefined {
  return headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value
}

export function findLastHeader(headers: readonly Header[], name: string): Bytes | undefined {
  return findHeader([...headers].reverse(), name)
}

/** A line's text without its (CR)LF. */
export function lineText(b: Bytes, pos: number, lf: number): Bytes {
  return b.slice(pos, lf < b.length && b[lf - 1] === '\r' && lf > pos ? lf - 1 : lf)
}

export const lineEnd = (b: Bytes, pos: number): number => {
  const lf = b.indexOf('\n', pos)
  return lf < 0 ? b.length : lf
}

/** message_parse_header_next: "Name: value" (name without the LWSP before ':'), or a line with no ':' as a nameless value. */
export function headerLine(line: Bytes): Header {
  const colon = line.indexOf(':')
  if (colon < 0) return { name: '', value: line }
  return { name: line.slice(0, colon).replace(/[ \t]+$/, ''), value: line.slice(colon + 1).replace(/^[ \t]+/, '') }
}
