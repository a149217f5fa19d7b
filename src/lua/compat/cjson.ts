// The built-in `cjson` and `cjson.safe` modules: lua-cjson 2.1 (Mark
// Pulford's, packaged by Debian as lua-cjson) in TypeScript over the engine
// API, with the OpenResty fork's additions that push scripts meet in the
// wild: integers stay integers both ways (Lua 5.3+), `cjson.empty_array`,
// `cjson.empty_array_mt`, `cjson.array_mt`, `encode_empty_table_as_object`,
// `decode_array_with_array_mt` and `encode_escape_forward_slash`.
//
// Error messages are lua-cjson's, word for word (lua_cjson.c): they are raised
// with luaL_error from the C function itself, so they carry no "file:line:"
// position, and `api.raise` from a host function prefixes nothing either.
//
// Choices where the brief and lua-cjson differ or the sources are silent:
// - NaN/Inf: lua-cjson 2.1.0 and OpenResty say "must not be NaN or Infinity"
//   (not "…or Inf"); this module uses lua-cjson's text.
// - A bad table key names the KEY's type, as lua_cjson.c does
//   (json_encode_exception at index -2): `{[true]=1}` raises
//   "Cannot serialise boolean: table key must be a number or string".
// - cjson.null and cjson.empty_array are light userdata in C; the engine API
//   has no light userdata, so they are empty full userdata (type "userdata",
//   no metatable) created once per Lua state and shared by every instance
//   (cjson, cjson.safe, cjson.new()), so `a.null == b.null` holds as in C.
// - encode_number_precision accepts 1..16 (OpenResty; Debian's 2.1.0 stops at 14).
// - Integers: an integer-subtype number encodes exactly (OpenResty's
//   LUA_INTEGER_FMT; 2.1.0 printed every number with %.14g). Decoding, a
//   number written without fraction/exponent that fits lua_Integer becomes an
//   integer (OpenResty's T_INTEGER), anything else a float. Unlike OpenResty's
//   strtoll, which saturates, a decimal integer beyond 64 bits decodes as a float.
// - fengari (Lua 5.3) has 32-bit integers: a JSON integer outside the int32
//   range decodes as a float there (math.type "float", value exact up to
//   2^53), and such values encode with %.14g like any float
//   (e.g. 2^53 → "9.007199254741e+15"; 3000000000 → "3000000000").
// - cjson.new() creates fresh host functions; like every host function they
//   live until the state closes (a script calling new() in a loop grows that).
// - Not implemented: decode_allow_comment, encode_indent,
//   encode_skip_unsupported_value_types, __len on array metatables (OpenResty
//   extras), and encode_keep_buffer has no effect (there is no shared buffer).

import { type LuaApi, type LuaThread, LuaType } from '../engine.js'
import type { BuiltinModule } from './modules.js'

/** Registry key of the per-state values every cjson instance shares. */
const SHARED_KEY = 'dovepush.cjson'
const INT_MAX = 2147483647

interface Config {
  sparseConvert: boolean
  sparseRatio: number
  sparseSafe: number
  encodeMaxDepth: number
  decodeMaxDepth: number
  /** 0 "off" (raise), 1 "on" (NaN/Infinity/-Infinity), 2 "null". */
  encodeInvalidNumbers: number
  decodeInvalidNumbers: boolean
  keepBuffer: boolean
  precision: number
  emptyTableAsObject: boolean
  decodeArrayWithArrayMt: boolean
  escapeForwardSlash: boolean
}

const defaultConfig = (): Config => ({
  sparseConvert: false,
  sparseRatio: 2,
  sparseSafe: 10,
  encodeMaxDepth: 1000,
  decodeMaxDepth: 1000,
  encodeInvalidNumbers: 0,
  decodeInvalidNumbers: true,
  keepBuffer: true,
  precision: 14,
  emptyTableAsObject: true,
  decodeArrayWithArrayMt: false,
  escapeForwardSlash: true,
})

/** A cjson error on its way out of encode/decode (raised, or returned by cjson.safe). */
class CjsonError extends Error {}

// ===== shared per-state values =====

/** Pushes the registry table {null, empty_array, empty_array_mt, array_mt, tonumber}, creating it once per state. */
function pushShared(api: LuaApi, L: LuaThread): void {
  if (api.rawgetfield(L, api.REGISTRYINDEX, SHARED_KEY) === LuaType.TABLE) return
  api.pop(L, 1)
  api.createtable(L, 0, 5)
  api.newuserdata(L)
  api.rawsetfield(L, -2, 'null')
  api.newuserdata(L)
  api.rawsetfield(L, -2, 'empty_array')
  api.createtable(L, 0, 0)
  api.rawsetfield(L, -2, 'empty_array_mt')
  api.createtable(L, 0, 0)
  api.rawsetfield(L, -2, 'array_mt')
  // the standard tonumber as loaded, to push 64-bit integers beyond 2^53 exactly
  api.getglobal(L, 'tonumber')
  api.rawsetfield(L, -2, 'tonumber')
  api.pushvalue(L, -1)
  api.rawsetfield(L, api.REGISTRYINDEX, SHARED_KEY)
}

// Stack slots during encode/decode: 1 the argument, then these.
const SH = 2
const NULL = 3
const EMPTY_ARRAY = 4
const EMPTY_ARRAY_MT = 5
const ARRAY_MT = 6

function pushSlots(api: LuaApi, L: LuaThread): void {
  pushShared(api, L) // SH
  api.rawgetfield(L, SH, 'null')
  api.rawgetfield(L, SH, 'empty_array')
  api.rawgetfield(L, SH, 'empty_array_mt')
  api.rawgetfield(L, SH, 'array_mt')
}

// ===== encoding =====

/** A growable byte buffer (lua-cjson's strbuf). */
class ByteSink {
  buf = new Uint8Array(256)
  len = 0
  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + n) size *= 2
    const b = new Uint8Array(size)
    b.set(this.buf.subarray(0, this.len))
    this.buf = b
  }
  byte(c: number): void {
    this.grow(1)
    this.buf[this.len++] = c
  }
  ascii(s: string): void {
    this.grow(s.length)
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i)
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length)
    this.buf.set(b, this.len)
    this.len += b.length
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.len)
  }
}

/** lua-cjson's char2escape: control characters, '"', '\\', '/' and DEL. */
const ESCAPES: readonly (string | undefined)[] = (() => {
  const t: (string | undefined)[] = new Array(256).fill(undefined)
  for (let i = 0; i < 32; i++) t[i] = `\\u${i.toString(16).padStart(4, '0')}`
  t[8] = '\\b'
  t[9] = '\\t'
  t[10] = '\\n'
  t[12] = '\\f'
  t[13] = '\\r'
  t[34] = '\\"'
  t[47] = '\\/'
  t[92] = '\\\\'
  t[127] = '\\u007f'
  return t
})()

function appendString(out: ByteSink, s: Uint8Array, cfg: Config): void {
  out.byte(0x22)
  let start = 0
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    const esc = ESCAPES[c]
    if (esc === undefined || (c === 0x2f && !cfg.escapeForwardSlash)) continue
    if (i > start) out.bytes(s.subarray(start, i))
    out.ascii(esc)
    start = i + 1
  }
  if (start < s.length) out.bytes(s.subarray(start))
  out.byte(0x22)
}

/**
 * C's printf("%.<precision>g", x) for a finite x, rounding the exact binary
 * value half to even as glibc does (JS's toPrecision rounds ties away from zero).
 */
export function formatG(x: number, precision: number): string {
  if (x === 0) return Object.is(x, -0) ? '-0' : '0'
  const sign = x < 0 ? '-' : ''
  const a = Math.abs(x)
  if (Number.isInteger(a) && a < 10 ** precision) return sign + String(a)
  // the (practically) exact decimal expansion: toPrecision rounds correctly at 100 digits
  const [mant, expPart] = a.toPrecision(100).split('e')
  const dot = mant.indexOf('.')
  const intPart = dot < 0 ? mant : mant.slice(0, dot)
  let digits = intPart + (dot < 0 ? '' : mant.slice(dot + 1))
  let lz = 0
  while (digits.charCodeAt(lz) === 48) lz++
  digits = digits.slice(lz)
  let exp = (expPart === undefined ? 0 : Number(expPart)) + intPart.length - 1 - lz
  const padded = digits.padEnd(precision + 1, '0')
  const head = padded.slice(0, precision).split('').map((d) => d.charCodeAt(0) - 48)
  const next = padded.charCodeAt(precision) - 48
  const restNonZero = /[1-9]/.test(padded.slice(precision + 1))
  if (next > 5 || (next === 5 && (restNonZero || head[precision - 1] % 2 === 1))) {
    let i = precision - 1
    while (i >= 0 && head[i] === 9) head[i--] = 0
    if (i >= 0) head[i]++
    else {
      head.unshift(1)
      head.pop()
      exp++
    }
  }
  let ds = head.join('')
  if (exp < -4 || exp >= precision) {
    const frac = ds.slice(1).replace(/0+$/, '')
    const e = Math.abs(exp)
    return `${sign}${ds[0]}${frac === '' ? '' : '.' + frac}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`
  }
  if (exp >= 0) {
    const frac = ds.slice(exp + 1).replace(/0+$/, '')
    return `${sign}${ds.slice(0, exp + 1)}${frac === '' ? '' : '.' + frac}`
  }
  ds = ds.replace(/0+$/, '')
  return `${sign}0.${'0'.repeat(-exp - 1)}${ds}`
}

class Encoder {
  readonly out = new ByteSink()
  constructor(
    private readonly api: LuaApi,
    private readonly L: LuaThread,
    private readonly cfg: Config,
  ) {}

  /** json_encode_exception: "Cannot serialise <type of the value at idx>: reason". */
  private fail(idx: number, reason: string): never {
    const { api, L } = this
    throw new CjsonError(`Cannot serialise ${api.typename(L, api.type(L, idx))}: ${reason}`)
  }

  private number(idx: number): void {
    const { api, L, cfg, out } = this
    if (api.isinteger(L, idx)) {
      out.ascii(api.tostring(L, idx) ?? '0') // exact, even beyond 2^53
      return
    }
    const n = api.tonumber(L, idx)
    if (!Number.isFinite(n)) {
      if (cfg.encodeInvalidNumbers === 0) this.fail(idx, 'must not be NaN or Infinity')
      if (cfg.encodeInvalidNumbers === 1) out.ascii(Number.isNaN(n) ? 'NaN' : n < 0 ? '-Infinity' : 'Infinity')
      else out.ascii('null')
      return
    }
    out.ascii(formatG(n, cfg.precision))
  }

  /** lua_array_length for the table on top: its max index, or -1 for an object. */
  private arrayLength(): number {
    const { api, L, cfg } = this
    let max = 0
    let items = 0
    api.pushnil(L)
    while (api.next(L, -2)) {
      if (api.type(L, -2) === LuaType.NUMBER) {
        const k = api.tonumber(L, -2)
        if (k !== 0 && Math.floor(k) === k && k >= 1) {
          if (k > max) max = k
          items++
          api.pop(L, 1)
          continue
        }
      }
      api.pop(L, 2)
      return -1
    }
    if (cfg.sparseRatio > 0 && max > items * cfg.sparseRatio && max > cfg.sparseSafe) {
      if (!cfg.sparseConvert) this.fail(-1, 'excessively sparse array')
      return -1
    }
    return max
  }

  private array(depth: number, length: number): void {
    const { api, L, out } = this
    out.byte(0x5b)
    for (let i = 1; i <= length; i++) {
      if (i > 1) out.byte(0x2c)
      api.rawgeti(L, -1, i)
      this.value(depth)
      api.pop(L, 1)
    }
    out.byte(0x5d)
  }

  private object(depth: number): void {
    const { api, L, cfg, out } = this
    out.byte(0x7b)
    let comma = false
    api.pushnil(L)
    while (api.next(L, -2)) {
      if (comma) out.byte(0x2c)
      comma = true
      const kt = api.type(L, -2)
      if (kt === LuaType.NUMBER) {
        out.byte(0x22)
        this.number(-2)
        out.ascii('":')
      } else if (kt === LuaType.STRING) {
        appendString(out, api.tobytes(L, -2) ?? new Uint8Array(0), cfg)
        out.byte(0x3a)
      } else {
        this.fail(-2, 'table key must be a number or string')
      }
      this.value(depth)
      api.pop(L, 1)
    }
    out.byte(0x7d)
  }

  private table(depth: number): void {
    const { api, L, cfg } = this
    depth++
    // json_check_encode_depth: key, value and an error message need room
    if (depth > cfg.encodeMaxDepth || !api.checkstack(L, 3)) {
      throw new CjsonError(`Cannot serialise, excessive nesting (${depth})`)
    }
    let emptyArrayMt = false
    let hasMt = false
    if (api.getmetatable(L, -1)) {
      hasMt = true
      if (api.rawequal(L, -1, ARRAY_MT)) {
        api.pop(L, 1)
        this.array(depth, api.rawlen(L, -1))
        return
      }
      emptyArrayMt = api.rawequal(L, -1, EMPTY_ARRAY_MT)
      api.pop(L, 1)
    }
    const len = this.arrayLength()
    if (len > 0 || (len === 0 && !cfg.emptyTableAsObject)) this.array(depth, len)
    else if (hasMt && emptyArrayMt) this.array(depth, len === 0 ? 0 : api.rawlen(L, -1))
    else this.object(depth)
  }

  /** json_append_data: the value on top of the stack. */
  value(depth: number): void {
    const { api, L, cfg, out } = this
    switch (api.type(L, -1)) {
      case LuaType.STRING:
        appendString(out, api.tobytes(L, -1) ?? new Uint8Array(0), cfg)
        return
      case LuaType.NUMBER:
        this.number(-1)
        return
      case LuaType.BOOLEAN:
        out.ascii(api.toboolean(L, -1) ? 'true' : 'false')
        return
      case LuaType.TABLE:
        this.table(depth)
        return
      case LuaType.NIL:
        out.ascii('null')
        return
      case LuaType.USERDATA:
      case LuaType.LIGHTUSERDATA:
        if (api.rawequal(L, -1, NULL)) {
          out.ascii('null')
          return
        }
        if (api.rawequal(L, -1, EMPTY_ARRAY)) {
          out.ascii('[]')
          return
        }
        return this.fail(-1, 'type not supported')
      default:
        return this.fail(-1, 'type not supported')
    }
  }
}

// ===== decoding =====

const T = {
  OBJ_BEGIN: 'T_OBJ_BEGIN',
  OBJ_END: 'T_OBJ_END',
  ARR_BEGIN: 'T_ARR_BEGIN',
  ARR_END: 'T_ARR_END',
  STRING: 'T_STRING',
  NUMBER: 'T_NUMBER',
  INTEGER: 'T_INTEGER',
  BOOLEAN: 'T_BOOLEAN',
  NULL: 'T_NULL',
  COLON: 'T_COLON',
  COMMA: 'T_COMMA',
  END: 'T_END',
  ERROR: 'T_ERROR',
} as const
type TokenType = (typeof T)[keyof typeof T]

interface Token {
  type: TokenType
  /** 0-based byte offset (shown 1-based, as lua-cjson does). */
  index: number
  /** T_ERROR's description, T_INTEGER's decimal text. */
  text: string
  str: Uint8Array
  num: number
  bool: boolean
}

const ASCII = new TextDecoder('ascii') // number texts are ASCII; a stateless decoder
const ascii = (b: Uint8Array, from: number, to: number): string => ASCII.decode(b.subarray(from, to))
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39
const hexValue = (c: number): number => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const l = c | 0x20
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1
}

class Decoder {
  private p = 0
  private depth = 0
  private readonly tmp = new ByteSink()
  private readonly tok: Token = { type: T.END, index: 0, text: '', str: new Uint8Array(0), num: 0, bool: false }

  constructor(
    private readonly api: LuaApi,
    private readonly L: LuaThread,
    private readonly cfg: Config,
    private readonly data: Uint8Array,
  ) {}

  /** The byte at i, 0 past the end (C's terminating NUL). */
  private at(i: number): number {
    return i < this.data.length ? this.data[i] : 0
  }

  private startsWith(s: string): boolean {
    for (let i = 0; i < s.length; i++) if (this.at(this.p + i) !== s.charCodeAt(i)) return false
    return true
  }

  private startsWithCI(at: number, s: string): boolean {
    for (let i = 0; i < s.length; i++) if ((this.at(at + i) | 0x20) !== s.charCodeAt(i)) return false
    return true
  }

  private error(t: Token, msg: string): void {
    t.type = T.ERROR
    t.index = this.p
    t.text = msg
  }

  private throwParse(expected: string, t: Token): never {
    const found = t.type === T.ERROR ? t.text : t.type
    throw new CjsonError(`Expected ${expected} but found ${found} at character ${t.index + 1}`)
  }

  /** json_next_token. */
  next(): Token {
    const t = this.tok
    let c = this.at(this.p)
    while (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) c = this.at(++this.p)
    t.index = this.p
    switch (c) {
      case 0:
        t.type = T.END
        return t
      case 0x7b:
        t.type = T.OBJ_BEGIN
        break
      case 0x7d:
        t.type = T.OBJ_END
        break
      case 0x5b:
        t.type = T.ARR_BEGIN
        break
      case 0x5d:
        t.type = T.ARR_END
        break
      case 0x2c:
        t.type = T.COMMA
        break
      case 0x3a:
        t.type = T.COLON
        break
      case 0x22:
        this.string(t)
        return t
      default: {
        if (c === 0x2d || isDigit(c)) {
          if (!this.cfg.decodeInvalidNumbers && this.isInvalidNumber()) this.error(t, 'invalid number')
          else this.number(t)
          return t
        }
        const unknown = c === 0x66 || c === 0x69 || c === 0x49 || c === 0x6e || c === 0x4e || c === 0x74 || c === 0x2b
        if (unknown) {
          if (this.startsWith('true')) {
            t.type = T.BOOLEAN
            t.bool = true
            this.p += 4
            return t
          }
          if (this.startsWith('false')) {
            t.type = T.BOOLEAN
            t.bool = false
            this.p += 5
            return t
          }
          if (this.startsWith('null')) {
            t.type = T.NULL
            this.p += 4
            return t
          }
          if (this.cfg.decodeInvalidNumbers && this.isInvalidNumber()) {
            this.number(t)
            return t
          }
        }
        this.error(t, 'invalid token')
        return t
      }
    }
    this.p++
    return t
  }

  /** json_is_invalid_number: forms strtod takes but JSON does not. */
  private isInvalidNumber(): boolean {
    let p = this.p
    if (this.at(p) === 0x2b) return true
    if (this.at(p) === 0x2d) p++
    const c = this.at(p)
    if (c === 0x30) {
      const c2 = this.at(p + 1)
      return (c2 | 0x20) === 0x78 || isDigit(c2)
    }
    if (c <= 0x39) return false
    return this.startsWithCI(p, 'inf') || this.startsWithCI(p, 'nan')
  }

  /**
   * C's strtod on the text at `start`: returns the value and the end offset
   * (end === start when nothing converts). Decimal, hexadecimal (with binary
   * exponent), inf/infinity and nan[(…)], with an optional sign.
   */
  private strtod(start: number): { value: number; end: number } {
    let p = start
    let sign = 1
    if (this.at(p) === 0x2b || this.at(p) === 0x2d) {
      if (this.at(p) === 0x2d) sign = -1
      p++
    }
    if (this.startsWithCI(p, 'inf')) {
      return { value: sign * Infinity, end: this.startsWithCI(p, 'infinity') ? p + 8 : p + 3 }
    }
    if (this.startsWithCI(p, 'nan')) {
      let end = p + 3
      if (this.at(end) === 0x28) {
        let q = end + 1
        while (isDigit(this.at(q)) || ((this.at(q) | 0x20) >= 0x61 && (this.at(q) | 0x20) <= 0x7a) || this.at(q) === 0x5f) q++
        if (this.at(q) === 0x29) end = q + 1
      }
      return { value: NaN, end }
    }
    if (this.at(p) === 0x30 && (this.at(p + 1) | 0x20) === 0x78) {
      let q = p + 2
      let mant = 0
      let any = false
      let scale = 0
      while (hexValue(this.at(q)) >= 0) {
        mant = mant * 16 + hexValue(this.at(q++))
        any = true
      }
      if (this.at(q) === 0x2e) {
        let r = q + 1
        while (hexValue(this.at(r)) >= 0) {
          mant = mant * 16 + hexValue(this.at(r++))
          scale -= 4
          any = true
        }
        if (any) q = r
      }
      if (any) {
        let exp = 0
        if ((this.at(q) | 0x20) === 0x70) {
          let r = q + 1
          let esign = 1
          if (this.at(r) === 0x2b || this.at(r) === 0x2d) esign = this.at(r++) === 0x2d ? -1 : 1
          if (isDigit(this.at(r))) {
            while (isDigit(this.at(r))) exp = exp * 10 + (this.at(r++) - 0x30)
            exp *= esign
            q = r
          }
        }
        return { value: sign * mant * 2 ** (exp + scale), end: q }
      }
      // "0x" with no hex digit: strtod converts the "0"
      return { value: sign * 0, end: p + 1 }
    }
    let q = p
    let digits = 0
    while (isDigit(this.at(q))) {
      q++
      digits++
    }
    if (this.at(q) === 0x2e) {
      q++
      while (isDigit(this.at(q))) {
        q++
        digits++
      }
    }
    if (digits === 0) return { value: 0, end: start }
    if ((this.at(q) | 0x20) === 0x65) {
      let r = q + 1
      if (this.at(r) === 0x2b || this.at(r) === 0x2d) r++
      if (isDigit(this.at(r))) {
        while (isDigit(this.at(r))) r++
        q = r
      }
    }
    const text = ascii(this.data, p, q)
    return { value: sign * Number(text), end: q }
  }

  /** json_next_number_token, OpenResty's: strtoll first for integers, strtod otherwise. */
  private number(t: Token): void {
    const start = this.p
    let q = start
    if (this.at(q) === 0x2b || this.at(q) === 0x2d) q++
    const digitsStart = q
    while (isDigit(this.at(q))) q++
    const after = this.at(q)
    // OpenResty falls back to strtod when strtoll stops at '.', 'e', 'E' or 'x' (not 'X')
    if (q > digitsStart && after !== 0x2e && after !== 0x65 && after !== 0x45 && after !== 0x78) {
      const text = ascii(this.data, start, q).replace(/^\+/, '')
      const big = BigInt(text)
      if (big >= -(2n ** 63n) && big < 2n ** 63n) {
        t.type = T.INTEGER
        t.text = big.toString()
        t.num = Number(big)
        this.p = q
        return
      }
    }
    const { value, end } = this.strtod(start)
    if (end === start) {
      this.error(t, 'invalid number')
      return
    }
    t.type = T.NUMBER
    t.num = value
    this.p = end
  }

  /** json_next_string_token (with json_append_unicode_escape). */
  private string(t: Token): void {
    const tmp = this.tmp
    tmp.len = 0
    this.p++
    let start = this.p
    let escaped = false
    for (;;) {
      const c = this.at(this.p)
      if (c === 0x22) break
      if (c === 0) {
        this.error(t, 'unexpected end of string')
        return
      }
      if (c !== 0x5c) {
        this.p++
        continue
      }
      if (this.p > start) tmp.bytes(this.data.subarray(start, this.p))
      escaped = true
      const e = this.at(this.p + 1)
      let out = -1
      switch (e) {
        case 0x22:
        case 0x5c:
        case 0x2f:
          out = e
          break
        case 0x62:
          out = 8
          break
        case 0x74:
          out = 9
          break
        case 0x6e:
          out = 10
          break
        case 0x66:
          out = 12
          break
        case 0x72:
          out = 13
          break
        case 0x75:
          if (!this.unicodeEscape()) {
            this.error(t, 'invalid unicode escape code')
            return
          }
          start = this.p
          continue
      }
      if (out < 0) {
        this.error(t, 'invalid escape code')
        return
      }
      tmp.byte(out)
      this.p += 2
      start = this.p
    }
    if (escaped) {
      if (this.p > start) tmp.bytes(this.data.subarray(start, this.p))
      t.str = tmp.result()
    } else {
      t.str = this.data.subarray(start, this.p)
    }
    this.p++
    t.type = T.STRING
  }

  private hex4(at: number): number {
    let v = 0
    for (let i = 0; i < 4; i++) {
      const d = hexValue(this.at(at + i))
      if (d < 0) return -1
      v = (v << 4) | d
    }
    return v
  }

  private unicodeEscape(): boolean {
    let cp = this.hex4(this.p + 2)
    if (cp < 0) return false
    let len = 6
    if ((cp & 0xf800) === 0xd800) {
      if (cp & 0x400) return false // a low surrogate first
      if (this.at(this.p + 6) !== 0x5c || this.at(this.p + 7) !== 0x75) return false
      const low = this.hex4(this.p + 8)
      if (low < 0 || (low & 0xfc00) !== 0xdc00) return false
      cp = (((cp & 0x3ff) << 10) | (low & 0x3ff)) + 0x10000
      len = 12
    }
    const tmp = this.tmp
    if (cp <= 0x7f) tmp.byte(cp)
    else if (cp <= 0x7ff) {
      tmp.byte((cp >> 6) | 0xc0)
      tmp.byte((cp & 0x3f) | 0x80)
    } else if (cp <= 0xffff) {
      tmp.byte((cp >> 12) | 0xe0)
      tmp.byte(((cp >> 6) & 0x3f) | 0x80)
      tmp.byte((cp & 0x3f) | 0x80)
    } else {
      tmp.byte((cp >> 18) | 0xf0)
      tmp.byte(((cp >> 12) & 0x3f) | 0x80)
      tmp.byte(((cp >> 6) & 0x3f) | 0x80)
      tmp.byte((cp & 0x3f) | 0x80)
    }
    this.p += len
    return true
  }

  private descend(slots: number): void {
    this.depth++
    // one more slot than lua-cjson: pushInteger may call tonumber (function + argument)
    if (this.depth <= this.cfg.decodeMaxDepth && this.api.checkstack(this.L, slots + 1)) return
    throw new CjsonError(`Found too many nested data structures (${this.depth}) at character ${this.p}`)
  }

  private pushInteger(t: Token): void {
    const { api, L } = this
    if (Number.isSafeInteger(t.num)) api.pushinteger(L, t.num)
    else if (api.integerBits === 64) {
      // beyond 2^53: let Lua convert the digits (lua_stringtonumber) to keep them exact
      api.rawgetfield(L, SH, 'tonumber')
      api.pushstring(L, t.text)
      api.call(L, 1, 1)
    } else api.pushnumber(L, t.num) // fengari: integers are 32-bit
  }

  /** json_process_value: pushes the value the token starts. */
  value(t: Token): void {
    const { api, L } = this
    switch (t.type) {
      case T.STRING:
        api.pushbytes(L, t.str)
        return
      case T.NUMBER:
        api.pushnumber(L, t.num)
        return
      case T.INTEGER:
        this.pushInteger(t)
        return
      case T.BOOLEAN:
        api.pushboolean(L, t.bool)
        return
      case T.OBJ_BEGIN:
        this.object()
        return
      case T.ARR_BEGIN:
        this.array()
        return
      case T.NULL:
        api.pushvalue(L, NULL)
        return
      default:
        this.throwParse('value', t)
    }
  }

  private object(): void {
    const { api, L } = this
    this.descend(3)
    api.createtable(L, 0, 0)
    let t = this.next()
    if (t.type === T.OBJ_END) {
      this.depth--
      return
    }
    for (;;) {
      if (t.type !== T.STRING) this.throwParse('object key string', t)
      api.pushbytes(L, t.str)
      t = this.next()
      if (t.type !== T.COLON) this.throwParse('colon', t)
      this.value(this.next())
      api.rawset(L, -3)
      t = this.next()
      if (t.type === T.OBJ_END) {
        this.depth--
        return
      }
      if (t.type !== T.COMMA) this.throwParse('comma or object end', t)
      t = this.next()
    }
  }

  private array(): void {
    const { api, L } = this
    this.descend(2)
    api.createtable(L, 0, 0)
    if (this.cfg.decodeArrayWithArrayMt) {
      api.pushvalue(L, ARRAY_MT)
      api.setmetatable(L, -2)
    }
    let t = this.next()
    if (t.type === T.ARR_END) {
      this.depth--
      return
    }
    for (let i = 1; ; i++) {
      this.value(t)
      api.rawseti(L, -2, i)
      t = this.next()
      if (t.type === T.ARR_END) {
        this.depth--
        return
      }
      if (t.type !== T.COMMA) this.throwParse('comma or array end', t)
      t = this.next()
    }
  }

  /** json_decode after the argument checks. */
  run(): void {
    const { data } = this
    if (data.length >= 2 && (data[0] === 0 || data[1] === 0)) {
      throw new CjsonError('JSON parser does not support UTF-16 or UTF-32')
    }
    this.value(this.next())
    const t = this.next()
    if (t.type !== T.END) this.throwParse('the end', t)
  }
}

// ===== the module table =====

/** luaL_checkinteger for the option functions. */
function checkInteger(api: LuaApi, L: LuaThread, arg: number): number {
  const n = api.tointeger(L, arg) // numeric strings too, as lua_tointegerx converts them
  if (n !== undefined) return n
  if (api.isnumber(L, arg)) return api.argerror(L, arg, 'number has no integer representation')
  return api.typeerror(L, arg, 'number')
}

/** json_arg_init: at most `args` arguments. */
function argInit(api: LuaApi, L: LuaThread, args: number): void {
  if (api.gettop(L) > args) api.argerror(L, args + 1, 'found too many arguments')
  api.settop(L, args)
}

/** json_integer_option: sets from arg `idx` unless nil, pushes the setting. */
function integerOption(api: LuaApi, L: LuaThread, idx: number, min: number, max: number, get: () => number, set: (v: number) => void): void {
  if (api.type(L, idx) !== LuaType.NIL) {
    const v = checkInteger(api, L, idx)
    // lua-cjson reports the range error against argument #1 whatever idx is
    if (v < min || v > max) api.argerror(L, 1, `expected integer between ${min} and ${max}`)
    set(v)
  }
  api.pushinteger(L, get())
}

/** json_enum_option: a boolean, or one of `options` by name; pushes a boolean for 0/1, else the name. */
function enumOption(api: LuaApi, L: LuaThread, idx: number, options: readonly string[], get: () => number, set: (v: number) => void): void {
  const t = api.type(L, idx)
  if (t !== LuaType.NIL) {
    if (t === LuaType.BOOLEAN) set(api.toboolean(L, idx) ? 1 : 0)
    else {
      const s = api.tostring(L, idx)
      if (s === undefined) api.typeerror(L, idx, 'string')
      const i = options.indexOf(s)
      if (i < 0) api.argerror(L, idx, `invalid option '${s}'`)
      set(i)
    }
  }
  const v = get()
  if (v === 0 || v === 1) api.pushboolean(L, v === 1)
  else api.pushstring(L, options[v])
}

const ON_OFF = ['off', 'on'] as const

/**
 * Pushes a new cjson (or cjson.safe) table with its own configuration:
 * lua_cjson_new / lua_cjson_safe_new. `onArrayMt` is told when
 * decode_array_with_array_mt is switched on (decoded arrays then get a
 * metatable the script can reach).
 */
function pushCjson(api: LuaApi, L: LuaThread, safe: boolean, onArrayMt: () => void): void {
  const cfg = defaultConfig()
  const prefix = safe ? 'cjson.safe.' : 'cjson.'

  const encode = (SL: LuaThread): number => {
    if (api.gettop(SL) !== 1) api.argerror(SL, 1, 'expected 1 argument')
    pushSlots(api, SL)
    api.pushvalue(SL, 1)
    let bytes: Uint8Array
    try {
      const enc = new Encoder(api, SL, cfg)
      enc.value(0)
      bytes = enc.out.result()
    } catch (err) {
      if (!(err instanceof CjsonError)) throw err
      return fail(SL, err.message)
    }
    api.pushbytes(SL, bytes)
    return 1
  }

  const decode = (SL: LuaThread): number => {
    if (api.gettop(SL) !== 1) api.argerror(SL, 1, 'expected 1 argument')
    const data = api.type(SL, 1) === LuaType.STRING || api.type(SL, 1) === LuaType.NUMBER ? api.tobytes(SL, 1) : undefined
    if (data === undefined) return api.typeerror(SL, 1, 'string')
    pushSlots(api, SL)
    try {
      new Decoder(api, SL, cfg, data).run()
    } catch (err) {
      if (!(err instanceof CjsonError)) throw err
      return fail(SL, err.message)
    }
    return 1
  }

  // cjson raises (luaL_error from the C function: no position); cjson.safe returns nil, message
  const fail = (SL: LuaThread, msg: string): number => {
    // drop what the failed walk left: luaL_error needs stack room beyond the
    // walk's lua_checkstack reserve (C Lua's EXTRA_STACK; fengari has none)
    api.settop(SL, 1)
    if (!safe) return api.raise(SL, msg)
    api.pushnil(SL)
    api.pushstring(SL, msg)
    return 2
  }

  const boolOption = (get: () => boolean, set: (v: boolean) => void) => (SL: LuaThread): number => {
    argInit(api, SL, 1)
    enumOption(api, SL, 1, ON_OFF, () => (get() ? 1 : 0), (v) => set(v === 1))
    return 1
  }

  const functions: Record<string, (SL: LuaThread) => number> = {
    encode,
    decode,
    encode_sparse_array: (SL) => {
      argInit(api, SL, 3)
      enumOption(api, SL, 1, ON_OFF, () => (cfg.sparseConvert ? 1 : 0), (v) => (cfg.sparseConvert = v === 1))
      integerOption(api, SL, 2, 0, INT_MAX, () => cfg.sparseRatio, (v) => (cfg.sparseRatio = v))
      integerOption(api, SL, 3, 0, INT_MAX, () => cfg.sparseSafe, (v) => (cfg.sparseSafe = v))
      return 3
    },
    encode_max_depth: (SL) => {
      argInit(api, SL, 1)
      integerOption(api, SL, 1, 1, INT_MAX, () => cfg.encodeMaxDepth, (v) => (cfg.encodeMaxDepth = v))
      return 1
    },
    decode_max_depth: (SL) => {
      argInit(api, SL, 1)
      integerOption(api, SL, 1, 1, INT_MAX, () => cfg.decodeMaxDepth, (v) => (cfg.decodeMaxDepth = v))
      return 1
    },
    encode_number_precision: (SL) => {
      argInit(api, SL, 1)
      integerOption(api, SL, 1, 1, 16, () => cfg.precision, (v) => (cfg.precision = v))
      return 1
    },
    encode_keep_buffer: boolOption(() => cfg.keepBuffer, (v) => (cfg.keepBuffer = v)),
    encode_invalid_numbers: (SL) => {
      argInit(api, SL, 1)
      enumOption(api, SL, 1, ['off', 'on', 'null'], () => cfg.encodeInvalidNumbers, (v) => (cfg.encodeInvalidNumbers = v))
      return 1
    },
    decode_invalid_numbers: boolOption(() => cfg.decodeInvalidNumbers, (v) => (cfg.decodeInvalidNumbers = v)),
    encode_empty_table_as_object: boolOption(() => cfg.emptyTableAsObject, (v) => (cfg.emptyTableAsObject = v)),
    decode_array_with_array_mt: boolOption(() => cfg.decodeArrayWithArrayMt, (v) => {
      cfg.decodeArrayWithArrayMt = v
      if (v) onArrayMt()
    }),
    encode_escape_forward_slash: boolOption(() => cfg.escapeForwardSlash, (v) => (cfg.escapeForwardSlash = v)),
    new: (SL) => {
      pushCjson(api, SL, safe, onArrayMt)
      return 1
    },
  }

  api.createtable(L, 0, Object.keys(functions).length + 6)
  for (const [name, fn] of Object.entries(functions)) {
    api.pushfunction(L, fn, `${prefix}${name}`)
    api.rawsetfield(L, -2, name)
  }
  pushShared(api, L)
  for (const k of ['null', 'empty_array', 'empty_array_mt', 'array_mt']) {
    api.rawgetfield(L, -1, k)
    api.rawsetfield(L, -3, k)
  }
  api.pop(L, 1)
  api.pushstring(L, 'cjson')
  api.rawsetfield(L, -2, '_NAME')
  api.pushstring(L, '2.1.0')
  api.rawsetfield(L, -2, '_VERSION')
}

function cjsonModule(safe: boolean): BuiltinModule {
  return {
    pushLoader(env, L) {
      const { api } = env
      api.pushfunction(L, (SL) => {
        pushCjson(api, SL, safe, () => env.gc.observe('cjson.decode_array_with_array_mt'))
        return 1
      }, safe ? 'require "cjson.safe"' : 'require "cjson"')
    },
  }
}

/** `require "cjson"`: lua-cjson, raising errors. */
export const cjson: BuiltinModule = cjsonModule(false)
/** `require "cjson.safe"`: the same, with encode/decode returning nil and the message instead. */
export const cjsonSafe: BuiltinModule = cjsonModule(true)
