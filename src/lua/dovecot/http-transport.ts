// The transport behind dovecot.http (http.ts): one undici Agent per client,
// one attempt per send with Dovecot's per-attempt timer, retries and
// redirects as lib-http does them, and network failures turned into
// Dovecot's internal 9xxx statuses with its wording. Kept apart from the Lua
// bindings so the transport can change (see http.ts about the wire order
// undici cannot reproduce) without touching what scripts see.

import { Buffer } from 'node:buffer'
import { Agent, type Dispatcher, errors } from 'undici'
import { type HttpTarget, redirectConnect } from '../../http/capture-sink.js'
import type { LuaEnv } from '../env.js'
import type { EventState } from './event.js'
import { type Http24Values, type HttpClientSettings, requestLimits } from './http-settings.js'

export const DEFAULT_REQUEST_TIMEOUT_MSECS = 60_000
/** setTimeout's limit; longer (e.g. 2.4 "infinite" = UINT_MAX) means no timer. */
export const MAX_TIMER_MS = 0x7fffffff

export interface ClientState {
  readonly settings: HttpClientSettings
  agent: Agent | undefined
  /** 2.4: the parsed http_client settings (per-method limits are read from them). */
  readonly v24?: Http24Values
  /** 2.4: the client's event ("http-client[N]: "), parent of its requests' events. */
  readonly event?: EventState
}

export interface RequestState {
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

export interface ResponseState {
  readonly status: number
  readonly reason: string
  readonly payload: Uint8Array
  /** Raw header list in the server's order. */
  readonly headers: Array<[string, string]>
}

// ---------------------------------------------------------------------------
// Internal statuses (lib-http http-client.h enum http_client_request_error)

export const ERR_ABORTED = 9000
export const ERR_HOST_LOOKUP_FAILED = 9002
export const ERR_CONNECT_FAILED = 9003
export const ERR_INVALID_REDIRECT = 9004
export const ERR_CONNECTION_LOST = 9005
export const ERR_BAD_RESPONSE = 9007
export const ERR_TIMED_OUT = 9008

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

export function errCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } }
  if (typeof e.code === 'string' && e.code.startsWith('E') && !e.code.startsWith('ERR_')) return e.code
  if (typeof e.cause?.code === 'string') return e.cause.code
  return typeof e.code === 'string' ? e.code : undefined
}

/** Dovecot's peer address text: `ip:port`, `[ipv6]:port`. */
export function peerAddr(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

export function urlPort(url: URL): number {
  if (url.port !== '') return Number(url.port)
  return url.protocol === 'https:' ? 443 : 80
}

/** The bare host of a URL (IPv6 without brackets). */
export function urlHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1')
}

/** Maps an undici / Node error to Dovecot's status and reason. */
export function classify(err: unknown, url: URL, timing: () => string): Failure {
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

export type ParsedUrl = { ok: true; url: URL } | { ok: false; reason: string }

export function parseHttpUrl(text: string): ParsedUrl {
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

export function decodeUserinfo(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** The URL without userinfo (for logs: never log credentials). */
export function redact(url: URL): string {
  const u = new URL(url.toString())
  u.username = ''
  u.password = ''
  return u.toString()
}

// ---------------------------------------------------------------------------
// Sending

/** Headers undici refuses or must own; the script's value is dropped (see the header comment). */
export const UNDICI_OWNED = new Set(['connection', 'expect', 'transfer-encoding', 'keep-alive', 'upgrade', 'content-length'])

interface AttemptResult {
  status: number
  reason: string
  headers: Array<[string, string]>
  body: Uint8Array
}

export function fmtSecs(ms: number): string {
  const m = Math.max(0, Math.round(ms))
  return `${Math.floor(m / 1000)}.${String(m % 1000).padStart(3, '0')}`
}

export function agentFor(client: ClientState, target: HttpTarget | undefined): Agent {
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
export function attempt(agent: Dispatcher, url: URL, method: string, headers: string[], body: Uint8Array | undefined, timeoutMs: number): Promise<AttemptResult> {
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
export async function perform(env: LuaEnv, rq: RequestState): Promise<ResponseState> {
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
