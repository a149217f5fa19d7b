// An RFC 5322 message → the content fields of MessageNew / MessageAppend (spec §2.3),
// read the way Dovecot 2.3.19.1 reads them for its push-notification Lua driver
// (plugins/push-notification/push-notification-event-message-common.c
// push_notification_message_fill, pushed by push-notification-driver-lua.c), and
// composeMessage, which builds a small .eml from a few fields.
//
// Dovecot's rules are ported from these files of tag 2.3.19.1, one module each under
// ./message/, named for the source file it follows:
//   unichar.ts                lib/unichar.c (UTF-8 validity)
//   charset.ts                lib-charset/charset-utf8.c, charset-iconv.c
//   message-header-parser.ts  lib-mail/message-header-parser.c, lib-storage/index/index-mail-headers.c
//   rfc822-parser.ts          lib-mail/rfc822-parser.c (incl. Content-Type), rfc2231-parser.c
//   message-address.ts        lib-mail/message-address.c
//   message-header-decode.ts  lib-mail/message-header-decode.c, quoted-printable.c (Q encoding)
//   base64.ts                 lib/base64.c
//   message-date.ts           lib-mail/message-date.c, lib/utc-mktime.c, index-mail.c (sent_date)
//   message-parser.ts         lib-mail/message-parser.c, message-part-data.c
//   message-decoder.ts        lib-mail/message-decoder.c
//   mail-html2text.ts         lib-mail/mail-html2text.c
//   message-snippet.ts        lib-mail/message-snippet.c
//   index-mail.ts             lib-storage/index/index-mail.c (first text part, body snippet)
// decode_address_header (push-notification-event-message-common.c) is addressFields below.
// The standard pieces come from libraries: iconv-lite (charsets), libqp (quoted-printable
// bodies), Node's Buffer (base64), html-entities (the HTML 4 entity names Dovecot knows),
// libmime (Content-Type parameters incl. RFC 2231; RFC 2047 encoding in composeMessage).
//
// The message is handled as a "byte string" (one char per byte, latin1, type Bytes), like
// the C code handles bytes; text leaves this file as UTF-8-decoded JS strings.
//
// Decided here, as the source does not settle it:
// - A string input is taken as UTF-8 text and encoded to bytes.
// - Dovecot hands raw bytes to Lua; the raw fields (from, to, message_id) are decoded as
//   UTF-8 here, invalid sequences → one U+FFFD per run (as uni_utf8_get_valid_data does).
// - Charset names are looked up in iconv-lite instead of glibc iconv; a name iconv-lite
//   does not know is treated like one iconv_open rejects (the bytes are read as UTF-8).
// - The message is processed whole, not in Dovecot's istream blocks, so the rare effects of
//   block edges (e.g. html2text not adding a space at the start of a block) are not copied.
// - Content-Type parameters are read by libmime; Dovecot's skipping of RFC 2231 extended
//   parameters (`charset*=`) is copied, but for a repeated parameter the last value wins.
// - Dovecot's MIME limits (100 nested parts, 10000 parts) are not enforced.
// - A broken base64 or quoted-printable body decodes as the library decodes it, except that
//   base64 stops at the first character that is neither base64 nor whitespace (as Dovecot).

import libmime from 'libmime'
import { bodySnippet } from './message/index-mail.js'
import { firstAddress } from './message/message-address.js'
import { sentDate } from './message/message-date.js'
import { decodeHeader } from './message/message-header-decode.js'
import { rawHeader } from './message/message-header-parser.js'
import { messageParts } from './message/message-parser.js'
import { type Bytes, validUtf8 } from './message/unichar.js'

/** The content fields of MessageNew/MessageAppend (spec §2.3); absent = nil in Lua. */
export interface MessageFields {
  readonly from: string
  readonly from_address: string
  readonly from_display_name: string
  readonly to: string
  readonly to_address: string
  readonly to_display_name: string
  readonly subject: string | undefined
  readonly date: number
  readonly tz: number
  readonly snippet: string | undefined
  readonly message_id: string | undefined
}

/** A message given as a few fields; composeMessage builds the .eml. */
export interface SimpleMessage {
  readonly from?: string
  readonly to?: string | readonly string[]
  readonly subject?: string
  /** RFC 5322 date text, or a Date. Default: none (Date header omitted). */
  readonly date?: string | Date
  readonly messageId?: string
  /** text/plain body. */
  readonly body?: string
  /** text/html body (alone: an HTML-only message; with body: multipart/alternative). */
  readonly html?: string
  /** Extra headers, added as given. */
  readonly headers?: Readonly<Record<string, string>>
}

/** Reads the fields from a message as received (bytes, or a string of its characters). */
export function parseMessage(eml: string | Uint8Array): MessageFields {
  const bytes = typeof eml === 'string' ? Buffer.from(eml, 'utf8') : Buffer.from(eml)
  const b = bytes.toString('latin1')
  const root = messageParts(b)
  const from = rawHeader(root.headers, 'From')
  const to = rawHeader(root.headers, 'To')
  const subject = rawHeader(root.headers, 'Subject')
  const messageId = rawHeader(root.headers, 'Message-ID')
  const date = sentDate(rawHeader(root.headers, 'Date'))
  const fromAddress = addressFields(from)
  const toAddress = addressFields(to)
  return {
    from: from === undefined ? '' : validUtf8(from),
    from_address: fromAddress.address,
    from_display_name: fromAddress.name,
    to: to === undefined ? '' : validUtf8(to),
    to_address: toAddress.address,
    to_display_name: toAddress.name,
    subject: subject === undefined ? undefined : decodeHeader(subject),
    date: date.time,
    tz: date.tz,
    snippet: bodySnippet(b, root),
    message_id: messageId === undefined ? undefined : validUtf8(messageId),
  }
}

/**
 * push-notification-event-message-common.c decode_address_header: `local@domain` of the
 * first address (just `local` without a domain, "" for a group or none) and its decoded
 * display name (for a group: the group's name).
 */
function addressFields(value: Bytes | undefined): { address: string; name: string } {
  const first = value === undefined ? undefined : firstAddress(value)
  if (first === undefined) return { address: '', name: '' }
  if ('group' in first) return { address: '', name: decodeHeader(first.group) }
  const address = first.domain !== '' ? `${first.mailbox}@${first.domain}` : first.mailbox
  return { address: validUtf8(address), name: decodeHeader(first.name ?? '') }
}

// ---- composing ---------------------------------------------------------------------------

/** RFC 2047-encodes the non-ASCII words of a header value (display names, subjects). */
const encodeWords = (value: string): string => libmime.encodeWords(value, 'Q')

/** RFC 5322 date-time in UTC. */
const rfc5322Date = (d: Date): string => d.toUTCString().replace(/GMT$/, '+0000')

const crlf = (text: string): string => text.replace(/\r?\n/g, '\r\n')

function textPart(subtype: 'plain' | 'html', text: string): string {
  return `Content-Type: text/${subtype}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${crlf(text)}`
}

/** A boundary that occurs in neither body. */
function boundaryFor(...bodies: string[]): string {
  let n = 0
  while (bodies.some((body) => body.includes(`dovepush-alt-${n}`))) n++
  return `dovepush-alt-${n}`
}

/** The MIME headers and body: text/plain, text/html, or both as multipart/alternative. */
function mimeBody(m: SimpleMessage): string {
  if (m.html === undefined) return textPart('plain', m.body ?? '')
  if (m.body === undefined) return textPart('html', m.html)
  const boundary = boundaryFor(m.body, m.html)
  return (
    `Content-Type: multipart/alternative; boundary="${boundary}"\r\n\r\n` +
    `--${boundary}\r\n${textPart('plain', m.body)}\r\n` +
    `--${boundary}\r\n${textPart('html', m.html)}\r\n` +
    `--${boundary}--\r\n`
  )
}

/** Builds a CRLF .eml from a few fields; non-ASCII subject and display names are RFC 2047-encoded. */
export function composeMessage(m: SimpleMessage): string {
  const lines: string[] = []
  if (m.from !== undefined) lines.push(`From: ${encodeWords(m.from)}`)
  if (m.to !== undefined) lines.push(`To: ${(typeof m.to === 'string' ? [m.to] : m.to).map(encodeWords).join(', ')}`)
  if (m.subject !== undefined) lines.push(`Subject: ${encodeWords(m.subject)}`)
  if (m.date !== undefined) lines.push(`Date: ${typeof m.date === 'string' ? m.date : rfc5322Date(m.date)}`)
  if (m.messageId !== undefined) lines.push(`Message-ID: ${m.messageId}`)
  for (const [name, value] of Object.entries(m.headers ?? {})) lines.push(`${name}: ${value}`)
  lines.push('MIME-Version: 1.0')
  return lines.join('\r\n') + '\r\n' + mimeBody(m)
}
