// The buffered file behind a Lua FILE* (io.ts): read-ahead, line and number
// scanning, positional writes, mode strings, number formatting, after what
// Lua 5.4's liolib.c and glibc's stdio do.

import * as fs from 'node:fs'
import { sysError } from './os.js'

export interface LFile {
  readonly id: number
  readonly fd: number
  /** stdin/stdout/stderr: io_noclose, never really closed. */
  readonly std: boolean
  /** Regular file or block device: read/write at `pos` (no lseek in Node). */
  readonly positional: boolean
  readonly append: boolean
  closed: boolean
  /** OS position just after the read-ahead buffer. */
  pos: number
  buf: Buffer
  start: number
  /** Sticky EOF within one read call (glibc), cleared as clearerr() in g_read. */
  eof: boolean
}

export const EMPTY = Buffer.alloc(0)
const CHUNK = 64 * 1024
const L_MAXLENNUM = 200
const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND } = fs.constants


const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** A blocking read/write on an fd Node may have made non-blocking (stdio pipes). */
function retrying(op: () => number): number {
  for (;;) {
    try {
      return op()
    } catch (err) {
      if (sysError(err).code !== 'EAGAIN') throw err
      sleep(5)
    }
  }
}

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13)
const isDigit = (c: number): boolean => c >= 48 && c <= 57
const isXDigit = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)

export function fill(f: LFile): boolean {
  if (f.eof) return false
  const chunk = Buffer.allocUnsafe(CHUNK)
  const n = retrying(() => fs.readSync(f.fd, chunk, 0, CHUNK, f.positional ? f.pos : null))
  if (n === 0) {
    f.eof = true
    return false
  }
  if (f.positional) f.pos += n
  f.buf = f.start < f.buf.length ? Buffer.concat([f.buf.subarray(f.start), chunk.subarray(0, n)]) : chunk.subarray(0, n)
  f.start = 0
  return true
}

export const peek = (f: LFile): number => (f.start < f.buf.length || fill(f) ? f.buf[f.start] : -1)

/** Drops the read-ahead so the next write or seek starts at the logical position. */
export function dropBuffer(f: LFile): void {
  if (f.positional) f.pos -= f.buf.length - f.start
  f.buf = EMPTY
  f.start = 0
}

export function readLine(f: LFile, keepNewline: boolean): Buffer | undefined {
  const parts: Buffer[] = []
  for (;;) {
    const nl = f.buf.indexOf(10, f.start)
    if (nl >= 0) {
      parts.push(f.buf.subarray(f.start, keepNewline ? nl + 1 : nl))
      f.start = nl + 1
      return Buffer.concat(parts)
    }
    parts.push(f.buf.subarray(f.start))
    f.start = f.buf.length
    if (!fill(f)) break
  }
  const b = Buffer.concat(parts)
  return b.length > 0 ? b : undefined // read_line: success if '\n' or something was read
}

export function readChars(f: LFile, n: number): Buffer {
  const parts: Buffer[] = []
  let left = n
  while (left > 0 && (f.start < f.buf.length || fill(f))) {
    const take = Math.min(left, f.buf.length - f.start)
    parts.push(f.buf.subarray(f.start, f.start + take))
    f.start += take
    left -= take
  }
  return Buffer.concat(parts)
}

/** liolib read_number's scan: at most L_MAXLENNUM chars of a numeral, leaving the look-ahead unread. */
export function scanNumber(f: LFile): string {
  let s = ''
  let c = peek(f)
  let ok = true
  const next = (): boolean => {
    if (s.length >= L_MAXLENNUM) return (ok = false)
    s += String.fromCharCode(c)
    f.start++
    c = peek(f)
    return true
  }
  const test2 = (set: string): boolean => (c === set.charCodeAt(0) || c === set.charCodeAt(1) ? next() : false)
  const digits = (hex: boolean): number => {
    let count = 0
    while ((hex ? isXDigit(c) : isDigit(c)) && next()) count++
    return count
  }
  while (isSpace(c)) {
    f.start++
    c = peek(f)
  }
  let count = 0
  let hex = false
  test2('-+')
  if (test2('00')) {
    if (test2('xX')) hex = true
    else count = 1
  }
  count += digits(hex)
  if (test2('..')) count += digits(hex)
  if (count > 0 && test2(hex ? 'pP' : 'eE')) {
    test2('-+')
    digits(false)
  }
  return ok ? s : ''
}

/** printf("%.14g", v) as glibc prints it (ties to even; inf, nan with its sign). */
export function formatG14(v: number): string {
  const neg = v < 0 || Object.is(v, -0) || (Number.isNaN(v) && (new Uint8Array(new Float64Array([v]).buffer)[7] as number) >= 0x80)
  const sign = neg ? '-' : ''
  if (Number.isNaN(v)) return `${sign}nan`
  const a = Math.abs(v)
  if (a === Infinity) return `${sign}inf`
  if (a === 0) return `${sign}0`
  const [long, longExp] = a.toExponential(30).split('e') as [string, string]
  const exact = long.replace('.', '')
  let [mant, exp] = a.toExponential(13).split('e') as [string, string]
  // JS rounds exact ties up; glibc rounds them to even
  if (exact.slice(14) === '5'.padEnd(17, '0') && Number(exact[13]) % 2 === 0) {
    mant = `${exact[0]}.${exact.slice(1, 14)}`
    exp = longExp
  }
  const digits = mant.replace('.', '')
  const x = Number(exp)
  const strip = (int: string, frac: string): string => {
    const f = frac.replace(/0+$/, '')
    return f === '' ? int : `${int}.${f}`
  }
  if (x < -4 || x >= 14) {
    return `${sign}${strip(digits[0] as string, digits.slice(1))}e${x < 0 ? '-' : '+'}${String(Math.abs(x)).padStart(2, '0')}`
  }
  if (x >= 0) return sign + strip(digits.slice(0, x + 1), digits.slice(x + 1))
  return sign + strip('0', '0'.repeat(-x - 1) + digits)
}

export function writeBytes(f: LFile, b: Uint8Array): void {
  dropBuffer(f)
  const at = f.positional && !f.append
  let off = 0
  while (off < b.length) {
    const n = retrying(() => fs.writeSync(f.fd, b, off, b.length - off, at ? f.pos : null))
    off += n
    if (at) f.pos += n
  }
  if (f.append && f.positional) f.pos = fs.fstatSync(f.fd).size
}

/** l_checkmode: [rwa]%+?b* */
export const MODE = /^[rwa]\+?b*$/
export function openFlags(mode: string): number {
  const plus = mode.includes('+')
  if (mode[0] === 'r') return plus ? O_RDWR : O_RDONLY
  const base = mode[0] === 'w' ? O_CREAT | O_TRUNC : O_CREAT | O_APPEND
  return base | (plus ? O_RDWR : O_WRONLY)
}
