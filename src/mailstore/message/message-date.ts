// The Date header, after Dovecot 2.3.19.1 src/lib-mail/message-date.c
// (message_date_parse), src/lib/utc-mktime.c and, for the stored value,
// src/lib-storage/index/index-mail.c (index_mail_cache_sent_date).
// Part of ../message.ts (see its top comment).

import { type Out, Rfc822Parser } from './rfc822-parser.js'
import type { Bytes } from './unichar.js'

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']

/**
 * index_mail_cache_sent_date: the Date header as Unix time and minutes east of UTC;
 * 0/0 when missing or unparseable. The time is stored as uint32 (struct mail_sent_date),
 * so dates before 1970 wrap around.
 */
export function sentDate(value: Bytes | undefined): { time: number; tz: number } {
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
