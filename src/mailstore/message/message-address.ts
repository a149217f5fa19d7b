// The first address of From/To, after Dovecot 2.3.19.1 src/lib-mail/message-address.c
// (message_address_parse with flags 0 and max_addresses 1).
// Part of ../message.ts (see its top comment).

import { type Out, Rfc822Parser } from './rfc822-parser.js'
import type { Bytes } from './unichar.js'

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

/** message_address_parse_real + parse_address: a group start, or a mailbox with the missing parts filled as "". */
export function firstAddress(value: Bytes): FirstAddress | undefined {
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
