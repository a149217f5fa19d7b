// dovecot.http client options under `--dovecot 2.4` (spec §7.4).
//
// Dovecot 2.4 (src/lib-lua/dlua-dovecot-http.c parse_client_settings) walks
// the options table with lua_next: `event_parent` is skipped; any other key
// K is a setting override if `http_client_K` is an http_client setting
// (src/lib-http/http-client-settings.c), or K itself an ssl setting
// (src/lib-ssl-iostream/ssl-settings.c) or a dns-client setting
// (src/lib-dns-client/dns-client-settings.c); else the walk stops with
// "K is unknown setting". Values go through lua_tostring. Then
// http_client_init_auto parses the http_client overrides with the settings
// parser (src/lib-settings/settings-parser.c, src/lib/str-parse.c,
// src/lib/strnum.c) and runs the settings check. The Lua error is
// `Invalid HTTP client setting: ` + the settings error, with the prefix
// "http_client settings: Failed to override configuration from hardcoded:
// Invalid http_client_" dropped. ssl_* and dns-client overrides are only
// parsed when those settings are looked up (at connect time): not checked
// here (2.4's own test: ssl_min_protocol = "cow" is accepted).

import { type LuaThread, LuaType } from '../engine.js'
import type { LuaEnv } from '../env.js'
import { dluaError } from './args.js'

type Kind = 'str' | 'uint' | 'bool' | 'msecs' | 'secs' | 'size'

/** http_client_* settings (without the prefix), their types and defaults (2.4.4). */
const HTTP_DEFINES: ReadonlyArray<[string, Kind, string | number | boolean]> = [
  ['dns_ttl', 'msecs', 0], // default HTTP_CLIENT_DEFAULT_DNS_TTL_MSECS; not used here
  ['user_agent', 'str', ''],
  ['proxy_socket_path', 'str', ''],
  ['proxy_url', 'str', ''],
  ['proxy_username', 'str', ''],
  ['proxy_password', 'str', ''],
  ['rawlog_dir', 'str', ''],
  ['max_idle_time', 'msecs', 0],
  ['max_parallel_connections', 'uint', 1],
  ['max_pipelined_requests', 'uint', 1],
  ['auto_redirect', 'bool', true],
  ['auto_retry', 'bool', true],
  ['proxy_ssl_tunnel', 'bool', true],
  ['request_max_redirects', 'uint', 0],
  ['request_max_attempts', 'uint', 1],
  ['read_request_max_attempts', 'uint', 0],
  ['write_request_max_attempts', 'uint', 0],
  ['delete_request_max_attempts', 'uint', 0],
  ['max_connect_attempts', 'uint', 0],
  ['connect_backoff_time', 'msecs', 100],
  ['connect_backoff_max_time', 'msecs', 60_000],
  ['response_hdr_max_size', 'size', 200 * 1024],
  ['response_hdr_max_field_size', 'size', 8 * 1024],
  ['response_hdr_max_fields', 'uint', 50],
  ['request_absolute_timeout', 'msecs', 0],
  ['request_timeout', 'msecs', 60_000],
  ['read_request_timeout', 'msecs', 0],
  ['write_request_timeout', 'msecs', 0],
  ['delete_request_timeout', 'msecs', 0],
  ['connect_timeout', 'msecs', 0],
  ['soft_connect_timeout', 'msecs', 0],
  ['max_auto_retry_delay', 'secs', 0],
  ['socket_send_buffer_size', 'size', 0],
  ['socket_recv_buffer_size', 'size', 0],
]
const HTTP_KIND = new Map(HTTP_DEFINES.map(([k, kind]) => [k, kind]))

/** ssl_setting_defines (2.4.4), incl. the two filter names; the names are matched, the values not checked. */
const SSL_KEYS = new Set([
  'ssl_client', 'ssl_server', 'ssl_client_ca_file', 'ssl_client_ca_dir', 'ssl_client_cert_file',
  'ssl_client_key_file', 'ssl_client_key_password', 'ssl_cipher_list', 'ssl_cipher_suites',
  'ssl_curve_list', 'ssl_min_protocol', 'ssl_crypto_device', 'ssl_client_require_valid_cert',
  'ssl_options', 'ssl_peer_certificate_fingerprint_hash',
])
/** dns_client_setting_defines (2.4.4). */
const DNS_KEYS = new Set(['dns_client_socket_path', 'base_dir', 'dns_client_timeout'])

const UINT_MAX = 0xffffffff
const UINTMAX_MAX = (1n << 64n) - 1n

export type Http24Values = Readonly<Record<string, string | number | boolean>>

export interface Http24Settings {
  readonly values: Http24Values
  /** The table given as event_parent (left on the Lua side to the caller). */
  readonly hasEventParent: boolean
}

type Parsed = { ok: true; value: number | boolean | string } | { ok: false; error: string }

/** str_parse_uintmax: leading digits (at least one), no overflow of uintmax_t. */
function parseUintmax(str: string): { num: bigint; rest: string } | undefined {
  const m = /^[0-9]+/.exec(str)
  if (m === null) return undefined
  const num = BigInt(m[0])
  return num > UINTMAX_MAX ? undefined : { num, rest: str.slice(m[0].length) }
}

/** str_begins_icase_with(full, p): `full` begins with `p`, ASCII case-insensitively. */
const beginsIcase = (full: string, p: string): boolean => full.startsWith(p.toLowerCase()) && p.length > 0

/** src/lib/str-parse.c str_parse_get_interval_full. */
export function parseInterval(str: string, milliseconds: boolean): Parsed {
  const parsed = parseUintmax(str)
  if (parsed === undefined) return { ok: false, error: `Invalid time interval: ${str}` }
  let { num } = parsed
  let p = parsed.rest.replace(/^ +/, '')
  if (p === '' && num !== 0n) return { ok: false, error: `Time interval '${str}' is missing units (add e.g. 's' for seconds)` }
  let multiply = milliseconds ? 1000n : 1n
  switch (p.charAt(0).toUpperCase()) {
    case 'S':
      if (beginsIcase('secs', p) || beginsIcase('seconds', p)) p = ''
      break
    case 'M':
      multiply *= 60n
      if (beginsIcase('mins', p) || beginsIcase('minutes', p)) p = ''
      else if (['msecs', 'mseconds', 'millisecs', 'milliseconds'].some((f) => beginsIcase(f, p))) {
        if (milliseconds || num % 1000n === 0n) {
          if (!milliseconds) num /= 1000n
          multiply = 1n
          p = ''
          break
        }
        return { ok: false, error: `Milliseconds not supported for this setting: ${str}` }
      }
      break
    case 'H':
      multiply *= 3600n
      if (beginsIcase('hours', p)) p = ''
      break
    case 'D':
      multiply *= 86_400n
      if (beginsIcase('days', p)) p = ''
      break
    case 'W':
      multiply *= 604_800n
      if (beginsIcase('weeks', p)) p = ''
      break
  }
  if (p !== '') return { ok: false, error: `Invalid time interval: ${str}` }
  if (num > BigInt(UINT_MAX) / multiply) return { ok: false, error: `Time interval is too large: ${str}` }
  return { ok: true, value: Number(num * multiply) }
}

/** src/lib/str-parse.c str_parse_get_size (the number only: sizes are not used). */
function parseSize(str: string): Parsed {
  const parsed = parseUintmax(str)
  if (parsed === undefined) return { ok: false, error: `Invalid size: ${str}` }
  let p = parsed.rest.replace(/^ +/, '')
  const units: Record<string, bigint> = { B: 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n }
  const multiply = units[p.charAt(0).toUpperCase()] ?? 1n
  if (units[p.charAt(0).toUpperCase()] !== undefined) p = p.slice(1)
  if (multiply > 1n) {
    if (p.charAt(0).toUpperCase() === 'I') p = p.slice(1)
    if (p.charAt(0).toUpperCase() === 'B') p = p.slice(1)
  }
  if (p !== '') return { ok: false, error: `Invalid size: ${str}` }
  if (parsed.num > UINTMAX_MAX / multiply) return { ok: false, error: `Size is too large: ${str}` }
  return { ok: true, value: Number(parsed.num * multiply) }
}

/** strnum.c str_num_error. */
function numError(str: string): string {
  const digits = (s: string): boolean => /^[0-9]+$/.test(s)
  if (str.startsWith('-')) return digits(str.slice(1)) ? 'Number too small' : 'Not a valid number'
  return digits(str) ? 'Number too large' : 'Not a valid number'
}

const isUnlimited = (v: string): boolean => v === 'unlimited' || v === 'infinite'

/** settings_parse_keyidx_value for one http_client setting. */
function parseValue(kind: Kind, value: string): Parsed {
  switch (kind) {
    case 'str':
      return { ok: true, value }
    case 'bool':
      // str_parse_get_bool (2.4.4): yes / y / 1 and no; case-insensitive except "1"
      if (/^(yes|y)$/i.test(value) || value === '1') return { ok: true, value: true }
      if (/^no$/i.test(value)) return { ok: true, value: false }
      return { ok: false, error: `Invalid boolean value: ${value} (use yes or no)` }
    case 'uint': {
      if (isUnlimited(value)) return { ok: true, value: UINT_MAX }
      if (/^[0-9]+$/.test(value) && BigInt(value) <= BigInt(UINT_MAX)) return { ok: true, value: Number(value) }
      return { ok: false, error: `Invalid number ${value}: ${numError(value)}` }
    }
    case 'msecs':
    case 'secs':
      if (isUnlimited(value)) return { ok: true, value: UINT_MAX }
      return parseInterval(value, kind === 'msecs')
    case 'size':
      if (isUnlimited(value)) return { ok: true, value: Number.MAX_SAFE_INTEGER }
      return parseSize(value)
  }
}

/** http_client_settings_check (2.4.4), in its order. */
function check(v: Record<string, string | number | boolean>, checkProxyUrl: (url: string) => string | undefined): string | undefined {
  if (v.proxy_url !== '') {
    const err = checkProxyUrl(String(v.proxy_url))
    if (err !== undefined) return `Invalid http_client_proxy_url: ${err}`
  }
  if (v.request_max_attempts === 0) return 'request_max_attempts must not be 0'
  if (v.max_pipelined_requests === 0) return 'http_client_max_pipelined_requests must not be 0'
  if (v.max_parallel_connections === 0) return 'http_client_max_parallel_connections must not be 0'
  if (v.connect_backoff_time === 0) return 'http_client_connect_backoff_time_msecs must not be 0'
  if ((v.connect_backoff_max_time as number) < (v.connect_backoff_time as number)) {
    // (sic) the two values are printed the other way round in Dovecot
    return `http_client_connect_backoff_time_msecs (${String(v.connect_backoff_max_time)}) must not be smaller than ` +
      `http_client_connect_backoff_max_time_msecs (${String(v.connect_backoff_time)})`
  }
  if (v.request_timeout === 0) return 'http_client_request_timeout_msecs must not be 0'
  return undefined
}

/**
 * Reads the options table at index 1 the 2.4 way; raises Dovecot's errors.
 * `checkProxyUrl` returns http_url_parse's error for a bad proxy URL.
 */
export function readSettings24(env: LuaEnv, L: LuaThread, checkProxyUrl: (url: string) => string | undefined): Http24Settings {
  const { api } = env
  const fail = (error: string): never => dluaError(api, L, `Invalid HTTP client setting: ${error}`)
  const overrides: Array<[string, string]> = []
  let hasEventParent = false
  api.pushnil(L)
  while (api.next(L, 1)) {
    const kt = api.type(L, -2)
    const vt = api.type(L, -1)
    if (kt !== LuaType.STRING && kt !== LuaType.NUMBER) {
      // lua_tostring(key) is NULL and Dovecot's strcmp() crashes the process
      fail(`a ${api.typename(L, kt)} key is not a setting name (Dovecot 2.4 crashes on it: lua_tostring() returns NULL)`)
    }
    // lua_tostring on a number key converts it; the walk stops right after, so no "invalid key to 'next'"
    const key = kt === LuaType.STRING ? api.tostring(L, -2)! : (api.pushvalue(L, -2), api.tostring(L, -1)!)
    if (kt !== LuaType.STRING) api.pop(L, 1)
    if (key === 'event_parent') {
      hasEventParent = true
      api.pop(L, 1)
      continue
    }
    if (!HTTP_KIND.has(key) && !SSL_KEYS.has(key) && !DNS_KEYS.has(key)) fail(`${key} is unknown setting`)
    if (vt !== LuaType.STRING && vt !== LuaType.NUMBER) {
      // Dovecot 2.4 passes lua_tostring()'s NULL to settings_override and
      // crashes when the setting is applied; a string ("yes", "5s") is needed.
      fail(`${key}: string or number expected, got ${api.typename(L, vt)} (Dovecot 2.4 crashes on it: lua_tostring() returns NULL; use e.g. "yes"/"no")`)
    }
    const value = api.tostring(L, -1)!
    overrides.push([key, value])
    api.pop(L, 1)
  }

  const values: Record<string, string | number | boolean> = Object.fromEntries(HTTP_DEFINES.map(([k, , d]) => [k, d]))
  for (const [key, value] of overrides) {
    const kind = HTTP_KIND.get(key)
    if (kind === undefined) continue // ssl_* / dns-client: not looked up before connecting
    const parsed = parseValue(kind, value)
    if (!parsed.ok) fail(`${key}=${value}: ${parsed.error}`)
    else values[key] = parsed.value
  }
  const err = check(values, checkProxyUrl)
  if (err !== undefined) fail(`http_client settings: Invalid settings: ${err}`)
  return { values, hasEventParent }
}

/** Per-request limits (http-client-request.c: read/write/delete_request_* override the client-wide values when non-zero). */
export function requestLimits(v: Http24Values, method: string): { attempts: number; timeoutMs: number } {
  let attempts = v.request_max_attempts as number
  let timeoutMs = v.request_timeout as number
  const m = method.toUpperCase()
  const kind = m === 'GET' || m === 'HEAD' ? 'read' : m === 'PUT' || m === 'POST' ? 'write' : m === 'DELETE' ? 'delete' : undefined
  if (kind !== undefined) {
    if (v[`${kind}_request_max_attempts`] !== 0) attempts = v[`${kind}_request_max_attempts`] as number
    if (v[`${kind}_request_timeout`] !== 0) timeoutMs = v[`${kind}_request_timeout`] as number
  }
  return { attempts, timeoutMs }
}

// ---------------------------------------------------------------------------
// 2.3.19: the fixed option list of dlua-dovecot-http.c (spec §7.1)

export const UINT_OPTIONS = [
  'max_idle_time_msecs',
  'max_redirects',
  'max_attempts',
  'max_connect_attempts',
  'connect_backoff_time_msecs',
  'connect_backoff_max_time_msecs',
  'request_absolute_timeout_msecs',
  'request_timeout_msecs',
  'connect_timeout_msecs',
  'soft_connect_timeout_msecs',
  'max_auto_retry_delay_secs',
] as const
export const BOOL_OPTIONS = ['no_auto_redirect', 'no_auto_retry', 'debug'] as const
export const STRING_OPTIONS = ['user_agent', 'rawlog_dir', 'proxy_url'] as const

type UintOption = (typeof UINT_OPTIONS)[number]
type BoolOption = (typeof BOOL_OPTIONS)[number]
type StringOption = (typeof STRING_OPTIONS)[number]

export interface HttpClientSettings {
  readonly uint: Readonly<Partial<Record<UintOption, number>>>
  readonly bool: Readonly<Partial<Record<BoolOption, boolean>>>
  readonly str: Readonly<Partial<Record<StringOption, string>>>
}
