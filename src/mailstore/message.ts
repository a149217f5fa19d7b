// An RFC 5322 message → the content fields of MessageNew / MessageAppend (spec §2.3),
// read the way Dovecot 2.3.19.1 reads them for its push-notification Lua driver
// (plugins/push-notification/push-notification-event-message-common.c
// push_notification_message_fill, pushed by push-notification-driver-lua.c), and
// composeMessage, which builds a small .eml from a few fields.
//
// Dovecot's rules are ported from these files of tag 2.3.19.1, one section each:
//   raw header values  lib-mail/message-header-parser.c, lib-storage/index/index-mail-headers.c
//   addresses          lib-mail/rfc822-parser.c, lib-mail/message-address.c
//   encoded words      lib-mail/message-header-decode.c, quoted-printable.c, lib-charset
//   Date               lib-mail/message-date.c, lib/utc-mktime.c, index-mail.c (sent_date)
//   MIME structure     lib-mail/message-parser.c, message-part-data.c,
//                      lib-storage/index/index-mail.c index_mail_find_first_text_mime_part
//   body decoding      lib-mail/message-decoder.c
//   snippet            lib-mail/message-snippet.c, mail-html2text.c, index-mail.c
// The standard pieces come from libraries: iconv-lite (charsets), libqp (quoted-printable
// bodies), Node's Buffer (base64), html-entities (the HTML 4 entity names Dovecot knows),
// libmime (Content-Type parameters incl. RFC 2231; RFC 2047 encoding in composeMessage).
//
// The message is handled as a "byte string" (one char per byte, latin1), like the C code
// handles bytes; text leaves this file as UTF-8-decoded JS strings.
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

import { decodeEntity } from 'html-entities'
import iconv from 'iconv-lite'
import libmime from 'libmime'
import libqp from 'libqp'

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

/** Bytes, one char per byte. */
type Bytes = string

/** Reads the fields from a message as received (bytes, or a string of its characters). */
export function parseMessage(eml: string | Uint8Array): MessageFields {
  const bytes = typeof eml === 'string' ? Buffer.from(eml, 'utf8') : Buffer.from(eml)
  const b = bytes.toString('latin1')
  const root = parseEntity(b, 0, [], false).part
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

// ---- text out of bytes ------------------------------------------------------------------

/** U+FFFD in UTF-8. */
const REPLACEMENT_CHAR: Bytes = '\xEF\xBF\xBD'

const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const UTF8_LOOSE = new TextDecoder('utf-8', { ignoreBOM: true })

/** lib/unichar.c uni_utf8_get_valid_data: invalid UTF-8 runs become one U+FFFD. */
function validUtf8(b: Bytes): string {
  const buf = Buffer.from(b, 'latin1')
  try {
    return UTF8_STRICT.decode(buf)
  } catch {
    return UTF8_LOOSE.decode(buf).replace(/\uFFFD+/g, '\uFFFD')
  }
}

/** lib-charset charset_is_utf8: these names are read as UTF-8 without iconv. */
const isUtf8Charset = (charset: string): boolean => /^(us-ascii|ascii|utf-8|utf8)$/i.test(charset)

/** charset_to_utf8_begin: an unknown charset is read as UTF-8 (message-header-decode.c, message-decoder.c). */
const readsAsUtf8 = (charset: string): boolean => isUtf8Charset(charset) || !iconv.encodingExists(charset)

/**
 * Appends bytes in a charset as text. Through iconv, the bytes of an unfinished character
 * at the end wait for more input, which never comes (charset-iconv.c, EINVAL). Read as
 * UTF-8, they do not start with a second U+FFFD right after one (unichar.c
 * output_add_replacement_char looks at the output).
 */
function appendText(out: string, b: Bytes, charset = 'UTF-8'): string {
  if (!readsAsUtf8(charset)) return out + iconv.getDecoder(charset).write(Buffer.from(b, 'latin1'))
  const text = validUtf8(b)
  const replaced = text.startsWith('\uFFFD') && !b.startsWith(REPLACEMENT_CHAR)
  return replaced && out.endsWith('\uFFFD') ? out + text.slice(1) : out + text
}

// ---- header block (message-header-parser.c, index-mail-headers.c) ------------------------

interface Header {
  readonly name: Bytes
  /** After ':' and the LWSP that follows; folded lines joined with LF (CR dropped). */
  value: Bytes
}

/** index-mail-headers.c get_parsed_header: the first field of that name, NULs as U+FFFD. */
function rawHeader(headers: readonly Header[], name: string): Bytes | undefined {
  return findHeader(headers, name)?.replaceAll('\0', REPLACEMENT_CHAR)
}

/** Header names match case-insensitively (the mail cache's field names are case-insensitive). */
function findHeader(headers: readonly Header[], name: string): Bytes | undefined {
  return headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value
}

function findLastHeader(headers: readonly Header[], name: string): Bytes | undefined {
  return findHeader([...headers].reverse(), name)
}

/** A line's text without its (CR)LF. */
function lineText(b: Bytes, pos: number, lf: number): Bytes {
  return b.slice(pos, lf < b.length && b[lf - 1] === '\r' && lf > pos ? lf - 1 : lf)
}

const lineEnd = (b: Bytes, pos: number): number => {
  const lf = b.indexOf('\n', pos)
  return lf < 0 ? b.length : lf
}

/** message_parse_header_next: "Name: value" (name without the LWSP before ':'), or a line with no ':' as a nameless value. */
function headerLine(line: Bytes): Header {
  const colon = line.indexOf(':')
  if (colon < 0) return { name: '', value: line }
  return { name: line.slice(0, colon).replace(/[ \t]+$/, ''), value: line.slice(colon + 1).replace(/^[ \t]+/, '') }
}

/**
 * Reads a header block up to the empty line. A line starting with an active MIME
 * boundary ends it too (message-parser.c parse_next_header).
 */
function readHeaders(b: Bytes, start: number, stack: readonly Boundary[]): { headers: Header[]; body: number; hit?: BoundaryHit } {
  const headers: Header[] = []
  for (let pos = start; pos < b.length; ) {
    const lf = lineEnd(b, pos)
    const hit = boundaryAt(b, pos, stack)
    if (hit !== undefined) return { headers, body: pos, hit }
    const line = lineText(b, pos, lf)
    const next = Math.min(lf + 1, b.length)
    if (line === '') return { headers, body: next }
    const last = headers.at(-1)
    if (last !== undefined && (line[0] === ' ' || line[0] === '\t')) last.value += '\n' + line
    else headers.push(headerLine(line))
    pos = next
  }
  return { headers, body: b.length }
}

// ---- RFC 822 tokens (rfc822-parser.c) ----------------------------------------------------

/** An accumulating output string, like the C functions' string_t argument. */
interface Out {
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
class Rfc822Parser {
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

// ---- the first address of From/To (message-address.c, flags 0, max 1 address) ------------

interface Address {
  name?: Bytes
  mailbox?: Bytes
  domain?: Bytes
  invalid?: boolean
}

interface AddressContext {
  readonly p: Rfc822Parser
  readonly addr: Address
  /** ctx->str: the last local part / phrase parsed. */
  readonly str: Out
}

type FirstAddress = { readonly group: Bytes } | { readonly name: Bytes | undefined; readonly mailbox: Bytes; readonly domain: Bytes }

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

/** message_address_parse_real + parse_address: a group start, or a mailbox with the missing parts filled as "". */
function firstAddress(value: Bytes): FirstAddress | undefined {
  const p = new Rfc822Parser(value, '')
  if (p.skipLwsp() <= 0) return undefined
  const ctx: AddressContext = { p, addr: {}, str: { v: '' } }
  const start = p.pos
  const group = parseGroupName(ctx)
  if (group !== undefined) return { group }
  p.pos = start
  parseMailbox(ctx)
  return { name: ctx.addr.name, mailbox: ctx.addr.mailbox ?? '', domain: ctx.addr.domain ?? '' }
}

/** parse_group: `phrase ":"` starts a group (its members do not matter for the first address). */
function parseGroupName({ p, str }: AddressContext): Bytes | undefined {
  str.v = ''
  return p.phrase(str) <= 0 || p.ch() !== ':' ? undefined : str.v
}

/** parse_mailbox: name-addr, else addr-spec; an addr-spec that is only a quoted local part becomes the name. */
function parseMailbox(ctx: AddressContext): void {
  const { p, addr } = ctx
  const start = p.pos
  if (parseNameAddr(ctx) >= 0) return
  p.pos = start
  parseAddrSpec(ctx)
  if (addr.invalid === true && addr.name === undefined && addr.mailbox !== undefined && addr.domain === undefined) {
    addr.name = addr.mailbox
    addr.mailbox = undefined
  }
}

/** parse_name_addr: `[phrase] "<" ... ">"`; an empty phrase is no name. */
function parseNameAddr(ctx: AddressContext): number {
  const { p, addr, str } = ctx
  str.v = ''
  if (p.phrase(str) <= 0 || p.ch() !== '<') return -1
  addr.name = str.v === '' ? undefined : str.v
  if (parseAngleAddr(ctx) < 0) addr.invalid = true
  return p.more()
}

/** parse_angle_addr: `"<" [@route ":"] local-part ["@" domain] ">"`. */
function parseAngleAddr(ctx: AddressContext): number {
  const { p } = ctx
  p.pos++
  if (p.skipLwsp() <= 0) return -1
  if (p.ch() === '@') {
    if (skipRoute(p) > 0 && p.ch() === ':') p.pos++
    else if (p.atEnd) return -1
    if (p.skipLwsp() <= 0) return -1
  }
  if (p.ch() !== '>') {
    if (parseLocalPart(ctx) <= 0) return -1
    if (p.ch() === '@' && parseDomain(ctx) <= 0) return -1
  }
  if (p.ch() !== '>') return -1
  p.pos++
  return p.skipLwsp()
}

/** parse_domain_list: an obsolete source route `@a,@b`. */
function skipRoute(p: Rfc822Parser): number {
  const route: Out = { v: '' }
  while (!p.atEnd) {
    if (p.ch() !== '@') return 1
    const ret = p.domain(route)
    if (ret <= 0) return ret
    while (p.skipLwsp() > 0 && p.ch() === ',') p.pos++
  }
  return 0
}

/**
 * parse_addr_spec: a comment after it is the name; a lone word is a mailbox without a
 * domain, and more words make it a display name without an address.
 */
function parseAddrSpec(ctx: AddressContext): number {
  const { p, addr, str } = ctx
  p.lastComment = ''
  const quoted = p.ch() === '"'
  let ret = parseLocalPart(ctx)
  if (ret <= 0) addr.invalid = true
  let domainRet = -2
  if (ret !== 0 && p.ch() === '@') {
    domainRet = parseDomain(ctx)
    if (domainRet <= 0) ret = domainRet
  }
  if (p.lastComment !== '') addr.name = p.lastComment
  else if (domainRet === -2) {
    str.v += ' '
    const len = str.v.length
    p.phrase(str)
    if (str.v.length !== len) {
      addr.mailbox = undefined
      addr.name = str.v
    } else if (!quoted) addr.domain = ''
    addr.invalid = true
    ret = -1
  }
  return ret
}

/** parse_local_part: quoted string or (non-strict) dot-atom. */
function parseLocalPart({ p, addr, str }: AddressContext): number {
  str.v = ''
  const ret = p.ch() === '"' ? p.quotedString(str) : nonStrictDotAtom(p, str)
  if (ret < 0) return -1
  addr.mailbox = str.v
  return ret
}

/** parse_nonstrict_dot_atom: dots may repeat or start/end the local part. */
function nonStrictDotAtom(p: Rfc822Parser, str: Out): number {
  let ret = -1
  do {
    while (p.ch() === '.') {
      str.v += '.'
      p.pos++
      if (p.atEnd) return 0
      ret = 1
    }
    if (p.ch() === '@') break
    ret = p.atom(str)
  } while (ret > 0 && p.ch() === '.')
  return ret
}

function parseDomain({ p, addr, str }: AddressContext): number {
  str.v = ''
  const ret = p.domain(str)
  if (ret < 0) return -1
  addr.domain = str.v
  return ret
}

// ---- encoded words (message-header-decode.c) ---------------------------------------------

/**
 * message_header_decode_utf8: RFC 2047 words decoded one by one into UTF-8; text that is
 * only LWSP (CR/LF included) before an encoded word is dropped, other text is kept as is.
 */
function decodeHeader(b: Bytes): string {
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

/** base64_decode_more: whitespace is skipped; decoding stops at any other non-base64 byte or the padding. */
function base64Decode(s: Bytes): Bytes {
  const valid = /^[A-Za-z0-9+/ \t\r\n]*/.exec(s)?.[0] ?? ''
  return Buffer.from(valid, 'base64').toString('latin1')
}

// ---- Date (message-date.c, utc-mktime.c, index-mail.c) -----------------------------------

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']

/**
 * index_mail_cache_sent_date: the Date header as Unix time and minutes east of UTC;
 * 0/0 when missing or unparseable. The time is stored as uint32 (struct mail_sent_date),
 * so dates before 1970 wrap around.
 */
function sentDate(value: Bytes | undefined): { time: number; tz: number } {
  const date = value === undefined ? undefined : parseDate(value)
  return date === undefined ? { time: 0, tz: 0 } : { time: date.time >>> 0, tz: date.tz }
}

/** next_token: an atom; '' at the end of input, undefined on a non-atom. */
function nextToken(p: Rfc822Parser): Bytes | undefined {
  if (p.atEnd) return ''
  const out: Out = { v: '' }
  return p.atom(out) < 0 ? undefined : out.v
}

const isTimeSep = (c: string | undefined): boolean => c === ':' || c === '.'

/** message_date_parser_tokens: `[weekday ","] dd month [yy]yy hh:mm[:ss] [zone]`. */
function parseDate(value: Bytes): { time: number; tz: number } | undefined {
  const p = new Rfc822Parser(value)
  p.skipLwsp()
  let token = nextToken(p)
  if (!token) return undefined
  if (token.length === 3) {
    // any three-letter word followed by ',' is taken as the weekday
    if (p.ch() !== ',') return undefined
    p.pos++
    p.skipLwsp()
    token = nextToken(p)
  }
  if (!token || !/^\d\d?$/.test(token)) return undefined
  const day = Number(token)
  token = nextToken(p)
  const month = token && token.length >= 3 ? MONTHS.indexOf(token.slice(0, 3).toLowerCase()) : -1
  if (month < 0) return undefined
  token = nextToken(p)
  if (!token || !/^(\d\d|\d{4})$/.test(token)) return undefined
  let year = Number(token)
  if (token.length === 2) year += year < 70 ? 2000 : 1900
  else if (year < 1900) return undefined
  token = nextToken(p)
  if (!token || !/^\d\d?$/.test(token) || !isTimeSep(p.ch())) return undefined
  const hour = Number(token)
  p.pos++
  p.skipLwsp()
  token = nextToken(p)
  if (token === undefined || !/^\d\d$/.test(token)) return undefined
  const minute = Number(token)
  let second = 0
  if (isTimeSep(p.ch())) {
    p.pos++
    p.skipLwsp()
    token = nextToken(p)
    if (!token || !/^\d\d$/.test(token)) return undefined
    second = Number(token)
  }
  token = nextToken(p)
  if (token === undefined) return undefined
  const tz = token === '' ? 0 : zoneOffset(token)
  const time = utcMktime(year, month, day, hour, minute, second)
  return time === undefined ? undefined : { time: time - tz * 60, tz }
}

/** utc_mktime: no normalisation (31 Feb, 24:00 are errors), second 60 read as 59; -1 is the error value. */
function utcMktime(year: number, month: number, day: number, hour: number, minute: number, second: number): number | undefined {
  const sec = second === 60 ? 59 : second
  const d = new Date(Date.UTC(year, month, day, hour, minute, sec))
  const exact =
    d.getUTCFullYear() === year &&
    d.getUTCMonth() === month &&
    d.getUTCDate() === day &&
    d.getUTCHours() === hour &&
    d.getUTCMinutes() === minute &&
    d.getUTCSeconds() === sec
  const time = d.getTime() / 1000
  return exact && time !== -1 ? time : undefined
}

/** EST, CST, MST, PST (the daylight-saving variants are one hour later). */
const US_ZONES = new Map([
  ['E', -300],
  ['C', -360],
  ['M', -420],
  ['P', -480],
])

const asciiUpper = (c: string): string => (c >= 'a' && c <= 'z' ? c.toUpperCase() : c)

/**
 * parse_timezone: ±hhmm; military letters (computed from the raw byte, as the C code does);
 * EST/EDT, CST/CDT, MST/MDT, PST/PDT (last letter an upper-case 'T'); anything else is 0.
 */
function zoneOffset(zone: Bytes): number {
  if (zone.length === 5 && (zone[0] === '+' || zone[0] === '-')) {
    if (!/^\d{4}$/.test(zone.slice(1))) return 0
    const minutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3))
    return zone[0] === '+' ? minutes : -minutes
  }
  if (zone.length === 1) {
    const upper = asciiUpper(zone)
    const raw = zone.charCodeAt(0)
    if (upper < 'J') return (raw - 0x41 + 1) * 60
    if (upper === 'J') return 0
    if (upper <= 'M') return (raw - 0x41) * 60
    if (upper < 'Z') return (0x4d - raw) * 60
    return 0
  }
  if (zone.length !== 3 || zone[2] !== 'T') return 0
  const base = US_ZONES.get(asciiUpper(zone[0]!))
  const kind = asciiUpper(zone[1]!)
  if (base === undefined || (kind !== 'D' && kind !== 'S')) return 0
  return kind === 'D' ? base + 60 : base
}

// ---- MIME structure (message-parser.c, message-part-data.c) ------------------------------

interface Boundary {
  readonly text: Bytes
}

interface BoundaryHit {
  readonly boundary: Boundary
  /** Where the "--boundary" line starts. */
  readonly line: number
  /** After that line. */
  readonly next: number
  /** "--boundary--": the multipart's last part has ended. */
  readonly epilogue: boolean
}

interface Part {
  readonly headers: readonly Header[]
  /** message-part-data.c content_type "/" content_subtype; undefined without Content-Type. */
  readonly type: string | undefined
  readonly children: Part[]
  readonly start: number
  end: number
}

const BOUNDARY_STRING_MAX_LEN = 80
const BOUNDARY_END_MAX_LEN = BOUNDARY_STRING_MAX_LEN + 4

/** rfc822_parse_content_type: "type/subtype" as Dovecot keeps it ("" or a bare type when broken); ok = parameters may follow. */
function contentType(value: Bytes): { value: string; ok: boolean } {
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
function contentParam(value: Bytes, name: string): string | undefined {
  if (new RegExp(`[;\\s]${name}\\*(\\d+\\*)?\\s*=`, 'i').test(value)) return undefined
  return libmime.parseHeaderValue(value).params[name]
}

/**
 * message_parser_parse_next_block, as a recursive descent: a part's header, then its body
 * up to the next line that starts with an active boundary. Multiparts need a boundary
 * parameter; message/rfc822 (and a part without Content-Type in multipart/digest) holds a
 * message. Preamble and epilogue belong to the multipart itself.
 */
function parseEntity(b: Bytes, start: number, stack: Boundary[], inDigest: boolean): { part: Part; hit: BoundaryHit | undefined } {
  const head = readHeaders(b, start, stack)
  const ctValue = findHeader(head.headers, 'Content-Type')
  const ct = ctValue === undefined ? undefined : contentType(ctValue)
  const part: Part = { headers: head.headers, type: ct?.value, children: [], start: head.body, end: head.body }
  if (head.hit !== undefined) return { part, hit: head.hit }
  const type = ct?.value.toLowerCase()
  const boundary = ct?.ok === true && type!.startsWith('multipart/') ? contentParam(ctValue!, 'boundary') : undefined
  if (boundary !== undefined) return parseMultipart(b, part, stack, { text: boundary.slice(0, BOUNDARY_STRING_MAX_LEN) }, type === 'multipart/digest')
  if (type === 'message/rfc822' || (ct === undefined && inDigest)) {
    const inner = parseEntity(b, head.body, stack, false)
    part.children.push(inner.part)
    part.end = inner.part.end
    return { part, hit: inner.hit }
  }
  const hit = nextBoundary(b, head.body, stack)
  part.end = hit === undefined ? b.length : bodyEnd(b, head.body, hit.line)
  return { part, hit }
}

/** The parts between "--boundary" lines, until "--boundary--" or an outer boundary. */
function parseMultipart(b: Bytes, part: Part, stack: Boundary[], own: Boundary, digest: boolean): { part: Part; hit: BoundaryHit | undefined } {
  stack.push(own)
  let hit = nextBoundary(b, part.start, stack)
  while (hit !== undefined && hit.boundary === own && !hit.epilogue) {
    const child = parseEntity(b, hit.next, stack, digest)
    part.children.push(child.part)
    hit = child.hit
  }
  stack.splice(stack.indexOf(own))
  if (hit?.boundary === own) hit = nextBoundary(b, hit.next, stack)
  return { part, hit }
}

/** The body ends before the (CR)LF that precedes the boundary line. */
function bodyEnd(b: Bytes, bodyStart: number, line: number): number {
  if (line === bodyStart) return line
  const lf = line - 1
  return lf > bodyStart && b[lf - 1] === '\r' ? lf - 1 : lf
}

function nextBoundary(b: Bytes, from: number, stack: readonly Boundary[]): BoundaryHit | undefined {
  if (stack.length === 0) return undefined
  for (let pos = from; pos < b.length; pos = lineEnd(b, pos) + 1) {
    const hit = boundaryAt(b, pos, stack)
    if (hit !== undefined) return hit
  }
  return undefined
}

/**
 * boundary_line_find + boundary_find: a line "--X" where X starts with an active boundary;
 * the longest such boundary wins, the innermost on a tie.
 */
function boundaryAt(b: Bytes, pos: number, stack: readonly Boundary[]): BoundaryHit | undefined {
  if (stack.length === 0 || !b.startsWith('--', pos)) return undefined
  const lf = b.indexOf('\n', pos)
  const text = lf < 0 ? b.slice(pos + 2, pos + 2 + BOUNDARY_END_MAX_LEN) : lineText(b, pos + 2, lf)
  const trailingDashes = lf >= 0 && text.length > 2 && text.endsWith('--')
  let best: Boundary | undefined
  for (let i = stack.length - 1; i >= 0; i--) {
    const boundary = stack[i]!
    const len = boundary.text.length
    if (len > text.length || !text.startsWith(boundary.text) || (best !== undefined && best.text.length >= len)) continue
    best = boundary
    if (len === text.length || (len === text.length - 2 && trailingDashes)) break
  }
  if (best === undefined) return undefined
  const epilogue = b.startsWith('--', pos + 2 + best.text.length)
  return { boundary: best, line: pos, next: lf < 0 ? b.length : lf + 1, epilogue }
}

// ---- snippet (index-mail.c, message-decoder.c, mail-html2text.c, message-snippet.c) -------

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
function bodySnippet(b: Bytes, root: Part): string {
  const part = findTextPart(root)
  const body = part === undefined ? undefined : decodedBody(b, part)
  if (body === undefined) return ''
  return snippetOf(body.html ? htmlToText(body.text) : body.text)
}

/**
 * message-decoder.c for one part, as message_snippet_generate uses it: the first
 * Content-Type decides (none = text/plain, text/html or application/xhtml+xml = HTML,
 * other non-text/ = skipped), the last Content-Transfer-Encoding decodes (unknown = skipped),
 * the charset parameter converts (default UTF-8).
 */
function decodedBody(b: Bytes, part: Part): { text: string; html: boolean } | undefined {
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

/** unichar.c uni_utf8_partial_strlen_n: the length up to a last character that needs more bytes than there are. */
function completeUtf8Length(b: Bytes): number {
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

function htmlToText(html: string): string {
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

/** C isspace() in the C locale. */
const isSpace = (c: string): boolean => c === ' ' || (c >= '\t' && c <= '\r')

interface SnippetText {
  text: string
  left: number
}

/**
 * message-snippet.c snippet_generate: whitespace runs become one space (none leading or
 * trailing), at most BODY_SNIPPET_MAX_CHARS characters counting those spaces; lines starting
 * with '>' go to a separate quoted snippet that is used (as '>' + text) only when there is
 * no other text. NULs and byte order marks are skipped.
 */
function snippetOf(text: string): string {
  const main: SnippetText = { text: '', left: BODY_SNIPPET_MAX_CHARS }
  const quoted: SnippetText = { text: '', left: BODY_SNIPPET_MAX_CHARS - 1 }
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
