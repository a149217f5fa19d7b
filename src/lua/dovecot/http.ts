// dovecot.http (spec §7): Dovecot 2.3.19's Lua HTTP client on undici.
//
// Objects are plain tables with a private `item` and their methods stored on
// the table itself, no metatable (recorded dumps: client {item, request},
// request {item, add_header, remove_header, set_payload, submit}, response
// {item, status, reason, payload, header}). `rq:submit()` blocks the script
// (the sentinel-yield of src/lua/call.ts) and never raises for network
// problems: they become Dovecot's internal 9xxx statuses with its wording.
//
// 2.4 (`env.dovecot === '2.4'`, spec §7.4): options are http_client_*
// settings parsed in http-settings.ts; set_payload takes an optional
// `synchronous` flag; requests have set_event/get_event.
// TODO(2.4): request_absolute_timeout, max_connect_attempts,
// connect_backoff_*, soft_connect_timeout, max_auto_retry_delay, rawlog_dir,
// proxy_* (requests go direct), max_parallel_connections /
// max_pipelined_requests, response_hdr_* and socket buffer sizes are parsed
// but not simulated; ssl_* and dns-client values are accepted unchecked (as
// 2.4 does at creation) and not applied; the client event prefix numbering
// ("http-client[N]: ") is per Lua state, not per process.
//
// Known divergences from the wire recording (http-sink.ndjson), accepted:
// undici cannot send `Expect: 100-continue` (2.3.19 sends it with every
// non-empty payload), and it writes Host / Connection / Content-Length
// itself, in its own order and lowercase (`host` first, `content-length`
// last, `connection: keep-alive`), where Dovecot sends `Host, Date,
// User-Agent, Expect, Content-Length, Connection: Keep-Alive` before the
// script's headers. Date, User-Agent, Authorization and the script's headers
// are sent in Dovecot's order and case. Do not work around undici here.

import { Buffer } from 'node:buffer'
import { Agent, type Dispatcher, errors } from 'undici'
import type { ResumeValues } from '../call.js'
import { type LuaThread, LuaType } from '../engine.js'
import type { LuaEnv, LuaMethods } from '../env.js'
import { LuaObjects } from '../objects.js'
import { type HttpTarget, redirectConnect } from '../../http/capture-sink.js'
import { checkString, dluaError, requireArgs, requireArgsIn } from './args.js'
import type { EventAccess, EventState } from './event.js'
import { type Http24Values, readSettings24, requestLimits } from './http-settings.js'

// ---------------------------------------------------------------------------
// Client settings

const UINT_OPTIONS = [
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
const BOOL_OPTIONS = ['no_auto_redirect', 'no_auto_retry', 'debug'] as const
const STRING_OPTIONS = ['user_agent', 'rawlog_dir', 'proxy_url'] as const

type UintOption = (typeof UINT_OPTIONS)[number]
type BoolOption = (typeof BOOL_OPTIONS)[number]
type StringOption = (typeof STRING_OPTIONS)[number]

export interface HttpClientSettings {
  readonly uint: Readonly<Partial<Record<UintOption, number>>>
  readonly bool: Readonly<Partial<Record<BoolOption, boolean>>>
  readonly str: Readonly<Partial<Record<StringOption, string>>>
}

const UINT_MAX = 0xffffffff
const DEFAULT_REQUEST_TIMEOUT_MSECS = 60_000
/** setTimeout's limit; longer (e.g. 2.4 "infinite" = UINT_MAX) means no timer. */
const MAX_TIMER_MS = 0x7fffffff

interface ClientState {
  readonly settings: HttpClientSettings
  agent: Agent | undefined
  /** 2.4: the parsed http_client settings (per-method limits are read from them). */
  readonly v24?: Http24Values
  /** 2.4: the client's event ("http-client[N]: "), parent of its requests' events. */
  readonly event?: EventState
}

interface RequestState {
  readonly client: ClientState
  readonly url: URL
  readonly method: string
  /** The script's headers in order, as given. */
  readonly headers: Array<[string, string]>
  payload: Uint8Array | undefined
  /** 2.4 set_payload's 2nd argument (Expect: 100-continue, which undici cannot send). */
  synchronous: boolean
  /** 2.4: the request's event (get_event). */
  event?: EventState
}

interface ResponseState {
  readonly status: number
  readonly reason: string
  readonly payload: Uint8Array
  /** Raw header list in the server's order. */
  readonly headers: Array<[string, string]>
}

// ---------------------------------------------------------------------------
// Internal statuses (lib-http http-client.h enum http_client_request_error)

const ERR_ABORTED = 9000
const ERR_HOST_LOOKUP_FAILED = 9002
const ERR_CONNECT_FAILED = 9003
const ERR_INVALID_REDIRECT = 9004
const ERR_CONNECTION_LOST = 9005
const ERR_BAD_RESPONSE = 9007
const ERR_TIMED_OUT = 9008

class AttemptTimeout extends Error {}

interface Failure {
  status: number
  reason: string
  /** Whether Dovecot would retry this failure when attempts remain. */
  retryable: boolean
}

/** strerror(3) texts (glibc) for the errno codes Node reports. */
const STRERROR: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'Connection refused',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ETIMEDOUT: 'Connection timed out',
  ECONNRESET: 'Connection reset by peer',
  EPIPE: 'Broken pipe',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EACCES: 'Permission denied',
}

function errCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } }
  if (typeof e.code === 'string' && e.code.startsWith('E') && !e.code.startsWith('ERR_')) return e.code
  if (typeof e.cause?.code === 'string') return e.cause.code
  return typeof e.code === 'string' ? e.code : undefined
}

/** Dovecot's peer address text: `ip:port`, `[ipv6]:port`. */
function peerAddr(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

function urlPort(url: URL): number {
  if (url.port !== '') return Number(url.port)
  return url.protocol === 'https:' ? 443 : 80
}

/** The bare host of a URL (IPv6 without brackets). */
function urlHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1')
}

/** Maps an undici / Node error to Dovecot's status and reason. */
function classify(err: unknown, url: URL, timing: () => string): Failure {
  if (err instanceof AttemptTimeout) {
    return { status: ERR_TIMED_OUT, reason: `Request timed out (${timing()})`, retryable: true }
  }
  const code = errCode(err)
  const e = err as { address?: unknown; port?: unknown; message?: unknown }
  const host = urlHost(url)
  if (code === 'ENOTFOUND' || code === 'EAI_NONAME' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NODATA') {
    // Dovecot 2.3.19 in a mail process fails every lookup with
    // "Failed to connect to dns-client: No such file or directory" (spec §7.1,
    // relative resolver socket path). dovepush resolves for real, as 2.3.20+
    // does; the text after the colon is getaddrinfo's (gai_strerror).
    const text = code === 'EAI_AGAIN' ? 'Temporary failure in name resolution' : 'Name or service not known'
    return { status: ERR_HOST_LOOKUP_FAILED, reason: `Failed to lookup host ${host}: ${text}`, retryable: false }
  }
  if (err instanceof errors.ConnectTimeoutError) {
    // Dovecot: "connect(%s) failed: Connection timed out in %u.%03u secs";
    // undici does not tell the address tried, nor the time: the URL's host is used.
    return { status: ERR_CONNECT_FAILED, reason: `connect(${peerAddr(host, urlPort(url))}) failed: Connection timed out`, retryable: true }
  }
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL' ||
    (code === 'ETIMEDOUT' && typeof e.address === 'string')) {
    const ip = typeof e.address === 'string' ? e.address : host
    const port = typeof e.port === 'number' ? e.port : urlPort(url)
    return { status: ERR_CONNECT_FAILED, reason: `connect(${peerAddr(ip, port)}) failed: ${STRERROR[code] ?? code}`, retryable: true }
  }
  if (code !== undefined && /^ERR_TLS_|^ERR_SSL_|CERT|^DEPTH_ZERO|^SELF_SIGNED|^UNABLE_TO_/.test(code)) {
    // TLS handshake / certificate failures: 9003 (spec §7.3); Dovecot's text differs (OpenSSL's words).
    return { status: ERR_CONNECT_FAILED, reason: `connect(${peerAddr(host, urlPort(url))}) failed: ${String(e.message ?? code)}`, retryable: false }
  }
  if (err instanceof errors.HTTPParserError || err instanceof errors.ResponseContentLengthMismatchError) {
    // Dovecot's parser words differ ("… Invalid HTTP response …"); the kind (9007) matches.
    return { status: ERR_BAD_RESPONSE, reason: `Invalid HTTP response: ${String(e.message ?? 'parse error')}`, retryable: false }
  }
  if (err instanceof errors.SocketError || code === 'ECONNRESET' || code === 'EPIPE' || err instanceof errors.ClientClosedError) {
    // http_client_connection_lost: "Connection lost: <detail> (<timing>)".
    // Dovecot's detail is its stream error (e.g. "Remote disconnected" for
    // EPIPE/ECONNRESET on write, "read(…) failed: EOF"); ours is approximate.
    const detail = code === 'ECONNRESET' || code === 'EPIPE' ? 'Remote disconnected' : 'read() failed: EOF'
    return { status: ERR_CONNECTION_LOST, reason: `Connection lost: ${detail} (${timing()})`, retryable: true }
  }
  // Anything else (e.g. undici refusing a header value): Dovecot would have
  // sent the request; there is no faithful status. 9000 "Aborted" + the cause.
  return { status: ERR_ABORTED, reason: `Aborted: ${err instanceof Error ? err.message : String(err)}`, retryable: false }
}

// ---------------------------------------------------------------------------
// URL parsing (lib-http http-url.c, as far as scripts can tell)

type ParsedUrl = { ok: true; url: URL } | { ok: false; reason: string }

function parseHttpUrl(text: string): ParsedUrl {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(text)) return { ok: false, reason: 'Relative HTTP URL not allowed' } // recorded
  const scheme = text.slice(0, text.indexOf(':')).toLowerCase()
  // Dovecot's wording for a non-http(s) scheme is not recorded ("Not an HTTP URL" from memory of http-url.c).
  if (scheme !== 'http' && scheme !== 'https') return { ok: false, reason: 'Not an HTTP URL' }
  try {
    const url = new URL(text)
    if (url.hostname === '') return { ok: false, reason: 'HTTP URL does not allow empty host identifier' }
    return { ok: true, url }
  } catch {
    // Dovecot's URI parser reports the exact offending part; ours is generic.
    return { ok: false, reason: 'Invalid URL' }
  }
}

function decodeUserinfo(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** The URL without userinfo (for logs: never log credentials). */
function redact(url: URL): string {
  const u = new URL(url.toString())
  u.username = ''
  u.password = ''
  return u.toString()
}

// ---------------------------------------------------------------------------
// Sending

/** Headers undici refuses or must own; the script's value is dropped (see the header comment). */
const UNDICI_OWNED = new Set(['connection', 'expect', 'transfer-encoding', 'keep-alive', 'upgrade', 'content-length'])

interface AttemptResult {
  status: number
  reason: string
  headers: Array<[string, string]>
  body: Uint8Array
}

function fmtSecs(ms: number): string {
  const m = Math.max(0, Math.round(ms))
  return `${Math.floor(m / 1000)}.${String(m % 1000).padStart(3, '0')}`
}

function agentFor(client: ClientState, target: HttpTarget | undefined): Agent {
  if (client.agent === undefined) {
    const s = client.settings.uint
    const requestTimeout = s.request_timeout_msecs || DEFAULT_REQUEST_TIMEOUT_MSECS
    const connectTimeout = Math.min(s.connect_timeout_msecs || requestTimeout, MAX_TIMER_MS)
    client.agent = new Agent({
      // --http capture: every connection goes to the built-in sink
      connect: target !== undefined ? redirectConnect(target, connectTimeout) : { timeout: connectTimeout },
      // our own per-attempt timer (request_timeout_msecs) replaces these
      headersTimeout: 0,
      bodyTimeout: 0,
      ...(s.max_idle_time_msecs ? { keepAliveTimeout: s.max_idle_time_msecs } : {}),
      pipelining: 1,
    })
  }
  return client.agent
}

/** One attempt: dispatch with a timer; resolves with the response or rejects with the cause. */
function attempt(agent: Dispatcher, url: URL, method: string, headers: string[], body: Uint8Array | undefined, timeoutMs: number): Promise<AttemptResult> {
  return new Promise<AttemptResult>((resolve, reject) => {
    let abort: ((err?: Error) => void) | undefined
    let timedOut = false
    let done = false
    let status = 0
    let reason = ''
    let resHeaders: Array<[string, string]> = []
    const chunks: Buffer[] = []
    const finish = (fn: () => void): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      fn()
    }
    const timer = timeoutMs > MAX_TIMER_MS ? undefined : setTimeout(() => {
      timedOut = true
      if (abort !== undefined) abort(new AttemptTimeout('timeout'))
      else finish(() => reject(new AttemptTimeout('timeout')))
    }, timeoutMs)
    const handler: Dispatcher.DispatchHandler = {
      onConnect(ab) {
        abort = ab
        if (timedOut) ab(new AttemptTimeout('timeout'))
      },
      onHeaders(statusCode, raw, _resume, statusText) {
        status = statusCode
        reason = statusText
        resHeaders = []
        for (let i = 0; i + 1 < raw.length; i += 2) resHeaders.push([raw[i]!.toString('latin1'), raw[i + 1]!.toString('latin1')])
        return true
      },
      onData(chunk) {
        chunks.push(chunk)
        return true
      },
      onComplete() {
        finish(() => resolve({ status, reason, headers: resHeaders, body: new Uint8Array(Buffer.concat(chunks)) }))
      },
      onError(err) {
        finish(() => reject(timedOut ? new AttemptTimeout('timeout') : err))
      },
    }
    const path = `${url.pathname}${url.search}`
    try {
      agent.dispatch({
        origin: url.origin,
        path: path === '' ? '/' : path,
        method: method as Dispatcher.HttpMethod,
        headers,
        ...(body !== undefined ? { body: Buffer.from(body) } : {}),
      }, handler)
    } catch (err) {
      finish(() => reject(err))
    }
  })
}

/** submit(): attempts, retries and redirects; never rejects. */
async function perform(env: LuaEnv, rq: RequestState): Promise<ResponseState> {
  const { settings } = rq.client
  const s = settings.uint
  const limits = rq.client.v24 !== undefined ? requestLimits(rq.client.v24, rq.method) : undefined
  const timeoutMs = limits?.timeoutMs ?? (s.request_timeout_msecs || DEFAULT_REQUEST_TIMEOUT_MSECS)
  const maxAttempts = limits?.attempts ?? Math.max(1, s.max_attempts ?? 0)
  const maxRedirects = s.max_redirects ?? 0
  const noAutoRetry = settings.bool.no_auto_retry === true
  const noAutoRedirect = settings.bool.no_auto_redirect === true
  const agent = agentFor(rq.client, env.httpTarget)

  let url = rq.url
  let method = rq.method
  let payload = rq.payload
  let redirects = 0
  let attempts = 0
  const queued = performance.now()
  let firstAttempt = queued
  let attemptStart = queued

  for (;;) {
    // Headers in Dovecot's order: Date, User-Agent, Authorization (unless the
    // script set them), then the script's. undici adds host/connection/content-length.
    const names = new Set(rq.headers.map(([k]) => k.toLowerCase()))
    const headers: string[] = []
    if (!names.has('date')) headers.push('Date', new Date().toUTCString())
    if (!names.has('user-agent') && settings.str.user_agent !== undefined) headers.push('User-Agent', settings.str.user_agent)
    if (!names.has('authorization') && (url.username !== '' || url.password !== '')) {
      const cred = `${decodeUserinfo(url.username)}:${decodeUserinfo(url.password)}`
      headers.push('Authorization', `Basic ${Buffer.from(cred, 'utf8').toString('base64')}`)
    }
    for (const [k, v] of rq.headers) {
      if (!UNDICI_OWNED.has(k.toLowerCase())) headers.push(k, v)
    }

    attempts++
    attemptStart = performance.now()
    if (attempts === 1) firstAttempt = attemptStart
    if (settings.bool.debug === true) env.log.debug({ method, url: redact(url), attempt: attempts }, 'dovecot.http: sending request')
    let res: AttemptResult
    try {
      res = await attempt(agent, url, method, headers, payload, timeoutMs)
    } catch (err) {
      const timing = (): string => {
        const now = performance.now()
        return `Request queued ${fmtSecs(now - queued)} secs ago, ${attempts} send attempts in ${fmtSecs(now - firstAttempt)} secs, ` +
          `${fmtSecs(now - queued)} in http ioloop, 0.000 in other ioloops, connected ${fmtSecs(now - attemptStart)} secs ago`
      }
      const failure = classify(err, url, timing)
      if (failure.retryable && !noAutoRetry && attempts < maxAttempts) continue
      return { status: failure.status, reason: failure.reason, payload: new Uint8Array(0), headers: [] }
    }

    // 408 is retried like a timeout (HC); 503 + Retry-After retries are not simulated.
    if (res.status === 408 && !noAutoRetry && attempts < maxAttempts) continue

    const location = res.headers.find(([k]) => k.toLowerCase() === 'location')?.[1]
    if (!noAutoRedirect && res.status >= 300 && res.status < 400 && res.status !== 304 && location !== undefined) {
      if (redirects >= maxRedirects) {
        // http_client_request_redirect: max_redirects 0 → "Redirect refused"
        // (spec §7.1); otherwise "Redirected more than %d times" (from memory
        // of HC, not recorded).
        const reason = maxRedirects === 0 ? 'Redirect refused' : `Redirected more than ${maxRedirects} times`
        return { status: ERR_INVALID_REDIRECT, reason, payload: new Uint8Array(0), headers: [] }
      }
      let next: URL
      try {
        next = new URL(location, url)
        if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new Error('scheme')
      } catch {
        // Dovecot: "Invalid redirect location: <reason>" (wording not recorded)
        return { status: ERR_INVALID_REDIRECT, reason: `Invalid redirect location: ${location}`, payload: new Uint8Array(0), headers: [] }
      }
      redirects++
      // RFC 7231 6.4.4: a 303 turns anything but HEAD into GET without payload
      if (res.status === 303 && method !== 'HEAD' && method !== 'GET') {
        method = 'GET'
        payload = undefined
      }
      url = next
      attempts = 0
      continue
    }
    return { status: res.status, reason: res.reason, payload: res.body, headers: res.headers }
  }
}

// ---------------------------------------------------------------------------
// Lua binding

/** The options in the order of the spec §7.1 table (believed to be 2.3.19's reading order; the first invalid one is reported). */
const OPTION_ORDER: ReadonlyArray<[string, 'uint' | 'bool' | 'str']> = [
  ['user_agent', 'str'], ['rawlog_dir', 'str'], ['max_idle_time_msecs', 'uint'], ['no_auto_redirect', 'bool'],
  ['no_auto_retry', 'bool'], ['max_redirects', 'uint'], ['max_attempts', 'uint'], ['max_connect_attempts', 'uint'],
  ['connect_backoff_time_msecs', 'uint'], ['connect_backoff_max_time_msecs', 'uint'],
  ['request_absolute_timeout_msecs', 'uint'], ['request_timeout_msecs', 'uint'], ['connect_timeout_msecs', 'uint'],
  ['soft_connect_timeout_msecs', 'uint'], ['max_auto_retry_delay_secs', 'uint'], ['debug', 'bool'], ['proxy_url', 'str'],
]

function readSettings(env: LuaEnv, L: LuaThread): HttpClientSettings {
  const { api } = env
  const uint: Record<string, number> = {}
  const bool: Record<string, boolean> = {}
  const str: Record<string, string> = {}
  const invalid = (name: string, what: string): never => dluaError(api, L, `Invalid HTTP client setting: ${name}: ${what} expected`)
  for (const [name, kind] of OPTION_ORDER) {
    const t = api.getfield(L, 1, name)
    if (t !== LuaType.NIL) {
      if (kind === 'str') {
        if (t !== LuaType.STRING) invalid(name, 'string')
        str[name] = api.tostring(L, -1)!
      } else if (kind === 'bool') {
        if (t !== LuaType.BOOLEAN) invalid(name, 'boolean')
        bool[name] = api.toboolean(L, -1)
      } else {
        const n = t === LuaType.NUMBER ? api.tointeger(L, -1) : undefined
        if (n === undefined || n < 0 || n > UINT_MAX) invalid(name, 'non-negative number')
        uint[name] = n!
      }
    }
    api.pop(L, 1)
  }
  // proxy_url is accepted but not used: requests go direct (TODO: undici ProxyAgent).
  // rawlog_dir, max_connect_attempts, connect_backoff_*, request_absolute_timeout_msecs,
  // soft_connect_timeout_msecs and max_auto_retry_delay_secs are checked but not simulated.
  // event_parent is ignored. Unknown keys are ignored (recorded: bogus_option accepted).
  return { uint, bool, str } as HttpClientSettings
}

/** Truncates at the first NUL byte (Dovecot takes the payload with strlen). */
function strlenBytes(b: Uint8Array): Uint8Array {
  const i = b.indexOf(0)
  return i < 0 ? b : b.subarray(0, i)
}

/** 2.4: the uint/bool/str view perform() reads, from the parsed http_client settings. */
function settingsFrom24(v: Http24Values): HttpClientSettings {
  const str: Record<string, string> = {}
  for (const k of ['user_agent', 'rawlog_dir', 'proxy_url'] as const) if (v[k] !== '') str[k] = v[k] as string
  return {
    uint: {
      request_timeout_msecs: v.request_timeout as number,
      connect_timeout_msecs: v.connect_timeout as number,
      max_idle_time_msecs: v.max_idle_time as number,
      max_redirects: v.request_max_redirects as number,
      max_attempts: v.request_max_attempts as number,
    },
    bool: { no_auto_redirect: v.auto_redirect !== true, no_auto_retry: v.auto_retry !== true },
    str,
  }
}

/** Dovecot's event for a request (http_client_request_update_event): fields and the "request [ReqN: …]: " prefix. */
function requestEvent(parent: EventState, id: number, method: string, url: URL): EventState {
  const target = `${url.pathname}${url.search}`
  return {
    parent,
    name: undefined,
    prefix: `request [Req${id}: ${method} ${url.protocol}//${url.host}${target}]: `,
    replacesPrefix: false,
    alwaysLogSource: false,
    fields: { method, dest_host: urlHost(url), dest_port: urlPort(url), target },
  }
}

const childEvent = (parent: EventState, prefix: string): EventState =>
  ({ parent, name: undefined, prefix, replacesPrefix: false, alwaysLogSource: false, fields: {} })

/** Pushes `dovecot.http` = `{ client = <function> }`. */
export function pushHttp(env: LuaEnv, events?: EventAccess): void {
  const { api, L } = env
  const v24 = env.dovecot === '2.4'
  let clientIds = 0
  let requestIds = 0
  const clients = new LuaObjects<ClientState>(api, L, 'http_client')
  const requests = new LuaObjects<RequestState>(api, L, 'http_client_request')
  const responses = new LuaObjects<ResponseState>(api, L, 'http_response')

  /** The object at arg 1, or Dovecot's "Bad argument" error. */
  function self<T>(SL: LuaThread, objs: LuaObjects<T>, typeName: string): T {
    const v = objs.get(SL, 1)
    if (v !== undefined) return v
    const t = api.type(SL, 1)
    return dluaError(api, SL, `Bad argument #1, expected ${typeName} got ${t === LuaType.TABLE ? 'table without item' : api.typename(SL, t)}`)
  }

  function pushObject(SL: LuaThread, methods: LuaMethods, prefix: string, pushItem: () => void): void {
    api.createtable(SL, 0, Object.keys(methods).length + 1)
    pushItem()
    api.setfield(SL, -2, 'item')
    for (const [k, fn] of Object.entries(methods)) {
      api.pushfunction(SL, fn, `${prefix}${k}`)
      api.setfield(SL, -2, k)
    }
  }

  const responseMethods: LuaMethods = {
    status(SL) {
      requireArgs(api, SL, 1)
      api.pushinteger(SL, self(SL, responses, 'struct http_response').status)
      return 1
    },
    reason(SL) {
      requireArgs(api, SL, 1)
      api.pushstring(SL, self(SL, responses, 'struct http_response').reason)
      return 1
    },
    payload(SL) {
      requireArgs(api, SL, 1)
      api.pushbytes(SL, self(SL, responses, 'struct http_response').payload)
      return 1
    },
    header(SL) {
      requireArgs(api, SL, 2)
      const res = self(SL, responses, 'struct http_response')
      const name = checkString(api, SL, 2).toLowerCase()
      api.pushstring(SL, res.headers.find(([k]) => k.toLowerCase() === name)?.[1] ?? '')
      return 1
    },
  }

  const requestMethods: LuaMethods = {
    add_header(SL) {
      requireArgs(api, SL, 3)
      const rq = self(SL, requests, 'struct http_client_request')
      rq.headers.push([checkString(api, SL, 2), checkString(api, SL, 3)])
      return 0
    },
    remove_header(SL) {
      requireArgs(api, SL, 2)
      const rq = self(SL, requests, 'struct http_client_request')
      const name = checkString(api, SL, 2).toLowerCase()
      // removes the first field of that name (2.3 http_client_request_remove_header)
      const i = rq.headers.findIndex(([k]) => k.toLowerCase() === name)
      if (i >= 0) rq.headers.splice(i, 1)
      return 0
    },
    set_payload(SL) {
      // 2.4: set_payload(str[, synchronous]), default not synchronous
      if (v24) requireArgsIn(api, SL, 2, 3)
      else requireArgs(api, SL, 2)
      const rq = self(SL, requests, 'struct http_client_request')
      checkString(api, SL, 2)
      rq.payload = strlenBytes(api.tobytes(SL, 2) ?? new Uint8Array(0))
      rq.synchronous = v24 && api.gettop(SL) >= 3 && api.toboolean(SL, 3)
      return 0
    },
    submit(SL) {
      requireArgs(api, SL, 1)
      const rq = self(SL, requests, 'struct http_client_request')
      const promise = perform(env, rq).then(
        (res): ResumeValues => (RL) => {
          pushObject(RL, responseMethods, 'http_response.', () => responses.pushItem(RL, res))
          return 1
        },
      )
      return env.caller.suspend(SL, 'rq:submit()', promise)
    },
  }
  if (v24 && events !== undefined) {
    const ev = events
    // 2.4.3: request set_event(event) makes the request's event a child of
    // `event` (http_client_request_set_event); get_event pushes the request's event.
    Object.assign(requestMethods, {
      set_event(SL: LuaThread) {
        requireArgs(api, SL, 2)
        const rq = self(SL, requests, 'struct http_client_request')
        const t = api.type(SL, 2)
        if (t !== LuaType.TABLE) return dluaError(api, SL, `Bad argument #2, expected struct event got ${api.typename(SL, t)}`)
        const parent = ev.get(SL, 2)
        // Dovecot dereferences the missing item (crash); dovepush raises
        if (parent === undefined) return dluaError(api, SL, 'Bad argument #2, expected struct event got table')
        const old = rq.event!
        rq.event = requestEvent(parent, Number(/\[Req(\d+):/.exec(old.prefix)?.[1] ?? 0), rq.method, rq.url)
        return 0
      },
      get_event(SL: LuaThread) {
        requireArgs(api, SL, 1)
        const rq = self(SL, requests, 'struct http_client_request')
        ev.push(SL, rq.event!)
        return 1
      },
    })
  }

  const clientMethods: LuaMethods = {
    request(SL) {
      requireArgs(api, SL, 2)
      const client = self(SL, clients, 'struct http_client')
      if (api.type(SL, 2) !== LuaType.TABLE) return api.typeerror(SL, 2, 'table')
      const ut = api.getfield(SL, 2, 'url')
      const urlText = ut === LuaType.STRING || ut === LuaType.NUMBER ? api.tostring(SL, -1) : undefined
      api.pop(SL, 1)
      if (urlText === undefined) return dluaError(api, SL, 'cannot create request: url not specified')
      const mt = api.getfield(SL, 2, 'method')
      const method = mt === LuaType.STRING || mt === LuaType.NUMBER ? api.tostring(SL, -1)! : 'GET'
      api.pop(SL, 1)
      const parsed = parseHttpUrl(urlText)
      if (!parsed.ok) return dluaError(api, SL, `Failed to parse url ${urlText}: ${parsed.reason}`)
      const rq: RequestState = { client, url: parsed.url, method, headers: [], payload: undefined, synchronous: false }
      if (client.event !== undefined) rq.event = requestEvent(client.event, ++requestIds, method, parsed.url)
      pushObject(SL, requestMethods, 'http_client_request.', () => requests.pushItem(SL, rq))
      return 1
    },
  }

  api.createtable(L, 0, 1)
  api.pushfunction(L, (SL) => {
    requireArgs(api, SL, 1)
    if (api.type(SL, 1) !== LuaType.TABLE) return api.typeerror(SL, 1, 'table')
    let client: ClientState
    if (v24) {
      let parent = events?.scriptEvent
      if (api.getfield(SL, 1, 'event_parent') === LuaType.TABLE && events !== undefined) {
        parent = events.get(SL, -1)
        // Dovecot's dlua_check_event dereferences the missing item (crash); dovepush raises
        if (parent === undefined) return dluaError(api, SL, 'Invalid HTTP client setting: event_parent: not a dovecot.event object (Dovecot 2.4 crashes on it)')
      }
      api.pop(SL, 1)
      const s24 = readSettings24(env, SL, (u) => {
        const p = parseHttpUrl(u)
        return p.ok ? undefined : p.reason
      })
      // event_create(event_parent) holding the settings, then the client's own event
      const event = parent === undefined ? undefined : childEvent(childEvent(parent, ''), `http-client[${++clientIds}]: `)
      client = { settings: settingsFrom24(s24.values), agent: undefined, v24: s24.values, ...(event !== undefined ? { event } : {}) }
    } else {
      client = { settings: readSettings(env, SL), agent: undefined }
    }
    pushObject(SL, clientMethods, 'http_client.', () => clients.pushItem(SL, client))
    return 1
  }, 'dovecot.http.client')
  api.setfield(L, -2, 'client')
}
