// The transport behind dovecot.http (http.ts): keep-alive connections pooled
// per Lua state and shared by its clients (see StatePools), one attempt per send with Dovecot's per-attempt
// timer, retries and redirects as lib-http does them, and network failures
// turned into Dovecot's internal 9xxx statuses with its wording.
//
// The request head must be Dovecot's, byte for byte, and `Expect:
// 100-continue` must wait for the server's `100 Continue`. undici writes
// host / connection / content-length itself (lowercase, its own order) and
// refuses Expect; node:http cost as much CPU per request as the whole
// exchange. So requests go over dovepush's own connections
// (http-connection.ts: the head written as built, a small HTTP/1.x response
// parser), plain or TLS (node:tls), direct or through proxy_url.
//
// The head, as http_client_request_send_real (src/lib-http/http-client-request.c,
// 2.3.19.1, lines 1346-1420) builds it: Host, Date, Authorization (user:pass@
// in the URL), User-Agent (user_agent set), Expect: 100-continue (payload_sync),
// Content-Length (a payload was set, or POST/PUT), Connection: Keep-Alive,
// each left out when the script added a header of that name; then the
// script's headers in the order added.

import { Buffer } from 'node:buffer'
import type { HttpTarget } from '../../http/capture-sink.js'
import type { LuaEnv } from '../env.js'
import type { EventState } from './event.js'
import { type Http24Values, type HttpClientSettings, requestLimits } from './http-settings.js'
import { ConnectionPool, PooledConnection, ResponseParser } from './http-connection.js'
import * as net from 'node:net'
import * as tls from 'node:tls'
import { lookup } from 'node:dns/promises'

export const DEFAULT_REQUEST_TIMEOUT_MSECS = 60_000
/** setTimeout's limit; longer (e.g. 2.4 "infinite" = UINT_MAX) means no timer. */
export const MAX_TIMER_MS = 0x7fffffff
/**
 * How long a request with `Expect: 100-continue` waits for `100 Continue`
 * before sending its payload anyway: HTTP_CLIENT_CONTINUE_TIMEOUT_MSECS
 * (src/lib-http/http-client-private.h line 13, 2.3.19.1 and 2.4: `(1000*2)`).
 */
export const CONTINUE_TIMEOUT_MSECS = 2000
/** Idle keep-alive connections are closed after this unless max_idle_time(_msecs) is set (Dovecot: 0 = never; the server usually closes first). */
export const DEFAULT_IDLE_MSECS = 4000

/**
 * Connections of one Lua state, shared by all its clients. dlua's
 * dovecot.http.client is http_client_init(), i.e. a client of the process's
 * global http_client context (2.3.19.1 dlua-dovecot-http.c, lib-http
 * http-client.c); connections belong to the context's peer pools (per peer
 * address, TLS context and rawlog_dir: http_client_peer_pool_get), an idle
 * one is claimed by any client's next request to that peer
 * (http_client_connection_claim_idle), and a client's deinit leaves its
 * connections idle in the pool ("Lost peer"), not closed. The Lua state
 * stands in for the process here.
 */
interface StatePools {
  /** Connections (http-connection.ts), per rawlog_dir. */
  readonly plain: Map<string, ConnectionPool>
  /** The context's connection list counter (lib connection.c id_counter): the N of "(conn:IP:PORT,id=N)". */
  lastConnectionId: number
}

const statePools = new WeakMap<LuaEnv, StatePools>()

function poolsOf(env: LuaEnv): StatePools {
  let p = statePools.get(env)
  if (p === undefined) statePools.set(env, (p = { plain: new Map(), lastConnectionId: 0 }))
  return p
}

/**
 * A connection's input stream name, as Dovecot's "read(%s) failed" texts
 * show it (lib connection.c connection_create_stream_name, with the HTTP
 * client's log_connection_id): `(conn:127.0.0.1:8080,id=3)`. Recorded in
 * the OX driver's log and with a real 2.3.19.1 behind proxy_url.
 */
export const streamName = (peer: string, id: number): string => `(conn:${peer},id=${id})`

export interface ClientState {
  readonly settings: HttpClientSettings
  /** 2.4: the parsed http_client settings (per-method limits are read from them). */
  readonly v24?: Http24Values
  /** 2.4: the client's event ("http-client[N]: "), parent of its requests' events. */
  readonly event?: EventState
}

export interface RequestState {
  readonly client: ClientState
  readonly url: URL
  readonly method: string
  /** The script's headers in order, as given (a name added twice keeps its first place and takes the new value). */
  readonly headers: Array<[string, string]>
  /**
   * Lowercase names ever added: Dovecot marks Host, Date, Authorization,
   * User-Agent, Expect, Connection, Content-Length and Transfer-Encoding as
   * present at add_header and remove_header does not clear the mark
   * (http_client_request_add_header_full), so its own line stays left out.
   */
  readonly added: Set<string>
  payload: Uint8Array | undefined
  /** 2.4 set_payload's 2nd argument (Expect: 100-continue). */
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

/** The attempt's request_timeout_msecs ran out. */
class AttemptTimeout extends Error {
  constructor(readonly connectedAt: number | undefined) {
    super('timeout')
  }
}

/** Setting up the connection failed in a way net does not report: connect_timeout_msecs ran out (TCP connect, or the TLS handshake after it), or the peer hung up during the handshake. */
class ConnectFailed extends Error {
  constructor(readonly text: string) {
    super(text)
  }
}

/** The connection broke after it was set up: Dovecot's "Connection lost: <detail>". */
class ConnectionLost extends Error {
  constructor(readonly detail: string, readonly connectedAt: number | undefined) {
    super(detail)
  }
}

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

export function fmtSecs(ms: number): string {
  const m = Math.max(0, Math.round(ms))
  return `${Math.floor(m / 1000)}.${String(m % 1000).padStart(3, '0')}`
}

/** Maps a transport / Node error to Dovecot's status and reason. */
export function classify(err: unknown, url: URL, timing: (connectedAt?: number) => string): Failure {
  if (err instanceof AttemptTimeout) {
    return { status: ERR_TIMED_OUT, reason: `Request timed out (${timing(err.connectedAt)})`, retryable: true }
  }
  if (err instanceof ConnectFailed) {
    return { status: ERR_CONNECT_FAILED, reason: err.text, retryable: true }
  }
  if (err instanceof ConnectionLost) {
    // http_client_connection_lost: "Connection lost: <detail> (<timing>)"
    return { status: ERR_CONNECTION_LOST, reason: `Connection lost: ${err.detail} (${timing(err.connectedAt)})`, retryable: true }
  }
  // net's autoSelectFamily: every address failed; Dovecot reports the last one it tried
  const errs = (err as { errors?: unknown }).errors
  const last = Array.isArray(errs) && errs.length > 0 ? errs[errs.length - 1] as unknown : err
  const code = errCode(err) ?? errCode(last)
  const e = last as { address?: unknown; port?: unknown; message?: unknown }
  const host = urlHost(url)
  if (code === 'ENOTFOUND' || code === 'EAI_NONAME' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NODATA') {
    // Dovecot 2.3.19 in a mail process fails every lookup with
    // "Failed to connect to dns-client: No such file or directory" (spec §7.1,
    // relative resolver socket path). dovepush resolves for real, as 2.3.20+
    // does; the text after the colon is getaddrinfo's (gai_strerror).
    const text = code === 'EAI_AGAIN' ? 'Temporary failure in name resolution' : 'Name or service not known'
    return { status: ERR_HOST_LOOKUP_FAILED, reason: `Failed to lookup host ${host}: ${text}`, retryable: false }
  }
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL' ||
    (code === 'ETIMEDOUT' && typeof e.address === 'string')) {
    const ip = typeof e.address === 'string' ? e.address : host
    const port = typeof e.port === 'number' ? e.port : urlPort(url)
    return { status: ERR_CONNECT_FAILED, reason: `connect(${peerAddr(ip, port)}) failed: ${STRERROR[code] ?? code}`, retryable: true }
  }
  if (code !== undefined && /^ERR_TLS_|^ERR_SSL_|CERT|^DEPTH_ZERO|^SELF_SIGNED|^UNABLE_TO_/.test(code)) {
    // TLS handshake / certificate failures: 9003 (spec §7.3); Dovecot's text differs (OpenSSL's words).
    return { status: ERR_CONNECT_FAILED, reason: `connect(${peerAddr(host, urlPort(url))}) failed: ${String((err as Error).message ?? code)}`, retryable: false }
  }
  if (code !== undefined && code.startsWith('HPE_')) {
    // Node's response parser (llhttp). Dovecot's parser words differ
    // ("… Invalid HTTP response …"); the kind (9007) matches.
    return { status: ERR_BAD_RESPONSE, reason: `Invalid HTTP response: ${String((err as Error).message ?? 'parse error')}`, retryable: false }
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    // lost before the attempt knew its socket (should not happen): Dovecot's wording, no address
    return { status: ERR_CONNECTION_LOST, reason: `Connection lost: Remote disconnected (${timing()})`, retryable: true }
  }
  // Anything else (e.g. node:http refusing a header name or value): Dovecot
  // would have sent the request (or asserted); there is no faithful status.
  // 9000 "Aborted" + the cause.
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
// Expect: 100-continue, per peer and per Lua state
//
// lib-http keeps, per peer (http_client_peer_shared, in the process-wide
// client context that every dovecot.http client shares, 2.3 and 2.4):
// no_payload_sync ("Expect: 100-continue failed before") and
// seen_100_response ("succeeded before"), http-client-private.h lines
// 236-237. http-client-connection.c (2.3.19.1):
// - http_client_connection_next_request, lines 677-680: a request sent to a
//   peer with no_payload_sync set loses payload_sync, so no Expect header;
// - lines 700-716: a request with payload_sync to a peer that never answered
//   100 starts a HTTP_CLIENT_CONTINUE_TIMEOUT_MSECS (2 s) timer after its
//   header is sent (http-client-request.c lines 1460-1467: the payload waits,
//   "Waiting for 100-continue");
// - http_client_connection_continue_timeout, lines 627-648: when it fires,
//   "Expected 100-continue response timed out; sending payload anyway", and
//   the peer gets no_payload_sync;
// - lines 1112-1134: `100 Continue` clears no_payload_sync, sets
//   seen_100_response and sends the payload; after the timer it is ignored
//   ("Got 100-continue response after timeout"). Once a peer has answered
//   100, later requests wait for it with no 2 s timer (request timeout only);
// - lines 1166-1170 and 1200-1209: a final response before `100 Continue`
//   ends the request without its payload; a 417 drops Expect for the peer
//   and retries (http_client_request_try_retry: attempts left, even with
//   no_auto_retry), else the 417 is the answer.
// The Lua state stands in for Dovecot's process here.

interface PeerState {
  noPayloadSync: boolean
  seen100: boolean
}

const peerStates = new WeakMap<LuaEnv, Map<string, PeerState>>()

function peerState(env: LuaEnv, url: URL): PeerState {
  let peers = peerStates.get(env)
  if (peers === undefined) peerStates.set(env, (peers = new Map()))
  const key = `${url.protocol}//${peerAddr(urlHost(url), urlPort(url))}`
  let p = peers.get(key)
  if (p === undefined) peers.set(key, (p = { noPayloadSync: false, seen100: false }))
  return p
}

// ---------------------------------------------------------------------------
// Sending

interface AttemptResult {
  status: number
  reason: string
  headers: Array<[string, string]>
  body: Uint8Array
  /** The answer came before the payload was sent (Expect: 100-continue). */
  payloadWithheld: boolean
}

interface TunnelSpec {
  /** The proxy, and the origin's address the CONNECT names. */
  readonly proxyHost: string
  readonly proxyPort: number
  readonly ip: string
  readonly port: number
  /** SNI: the origin's host name (none for an IP). */
  readonly servername: string | undefined
  /** The CONNECT request head. */
  readonly head: Buffer
}

interface AttemptSpec {
  /** The state's connections (http-connection.ts). */
  readonly pool: ConnectionPool
  /** CA certificates for TLS (ssl_client_ca_file), else Node's. */
  readonly ca: readonly string[] | undefined
  /** How long the connection stays idle after this request. */
  readonly idleMs: number
  /** The id of a new connection (counted per Lua state, failed connects included). */
  readonly nextConnectionId: () => number
  /** https:// through proxy_url: the CONNECT tunnel to make. */
  readonly tunnel?: TunnelSpec
  /** The pool's key for the connection (default host:port). */
  readonly poolKey?: string
  /** TLS (https://, not in capture mode, which always sends in plain text). */
  readonly tls: boolean
  /** Where to connect (the URL's host, or the capture sink). */
  readonly host: string
  readonly port: number
  readonly servername: string | undefined
  readonly method: string
  readonly path: string
  readonly headers: Array<[string, string]>
  readonly body: Uint8Array | undefined
  readonly timeoutMs: number
  readonly connectTimeoutMs: number
  /** Wait for `100 Continue` before sending the body. */
  readonly sync: boolean
  readonly peer: PeerState
}

/** node:tls options for a connection to `servername` (SNI; none for an IP), trusting `ca` when given. */
const tlsOptions = (servername: string | undefined, ca: readonly string[] | undefined): tls.ConnectionOptions => ({
  ...(servername !== undefined ? { servername } : {}),
  ...(ca !== undefined ? { ca: [...ca] } : {}),
})

/** How long a connection the client used stays idle (max_idle_time_msecs; 0 = dovepush's default). */
const idleMsOf = (client: ClientState): number => Math.min(client.settings.uint.max_idle_time_msecs || DEFAULT_IDLE_MSECS, MAX_TIMER_MS)

/** The state's plain-HTTP connection pool for the client's rawlog_dir. */
function poolFor(env: LuaEnv, client: ClientState): ConnectionPool {
  const pools = poolsOf(env).plain
  const key = client.settings.str.rawlog_dir ?? ''
  let p = pools.get(key)
  if (p === undefined) pools.set(key, (p = new ConnectionPool()))
  return p
}

const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/

/**
 * One attempt: one request on a pooled or new connection (plain, TLS, or a
 * tunnel through the proxy) with its timers; resolves with the response or
 * rejects with the cause.
 */
function attempt(spec: AttemptSpec): Promise<AttemptResult> {
  return new Promise<AttemptResult>((resolve, reject) => {
    const pool = spec.pool
    const key = spec.poolKey ?? peerAddr(spec.host, spec.port)
    let done = false
    let socket: net.Socket | undefined
    let conn: PooledConnection | undefined
    let connectTimer: NodeJS.Timeout | undefined
    let continueTimer: NodeJS.Timeout | undefined
    let bodySent = false
    let gotResponse = false

    const fail = (err: unknown): void => {
      if (done) return
      done = true
      conn?.requestTimer.disarm()
      clearTimeout(connectTimer)
      clearTimeout(continueTimer)
      socket?.destroy()
      reject(err)
    }
    // the checks node:http made (9000 "Aborted: …", kept from when it sent these); Dovecot would send it as given
    for (const [k, v] of spec.headers) {
      if (!HTTP_TOKEN.test(k)) return fail(new TypeError(`Header name must be a valid HTTP token ["${k}"]`))
      if (BAD_HEADER_VALUE.test(v)) return fail(new TypeError(`Invalid character in header content ["${k}"]`))
    }
    const head = Buffer.from(`${spec.method} ${spec.path} HTTP/1.1\r\n${spec.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'latin1')
    const body = spec.body !== undefined && spec.body.length > 0 ? Buffer.from(spec.body.buffer, spec.body.byteOffset, spec.body.byteLength) : undefined
    const lost = (detail: string): ConnectionLost => new ConnectionLost(detail, conn?.connectedAt)

    const sendBody = (): void => {
      if (bodySent || done) return
      bodySent = true
      socket!.write(body!)
    }
    const finish = (): void => {
      const res = parser.done!
      done = true
      conn!.requestTimer.disarm()
      clearTimeout(continueTimer)
      const withheld = body !== undefined && !bodySent
      // the payload announced by Content-Length was never sent: this connection cannot carry another request
      if (res.keepAlive && !withheld && parser.extra === 0) pool.put(key, conn!, spec.idleMs, res.keepAliveHint)
      else socket!.destroy()
      resolve({ status: res.status, reason: res.reason, headers: res.headers, body: res.body, payloadWithheld: withheld })
    }
    const parser = new ResponseParser(spec.method.toUpperCase() === 'HEAD', (status) => {
      // `100 Continue`: the payload now ("Got 100-continue response after timeout" when too late)
      if (status !== 100 || !spec.sync || bodySent || gotResponse || done) return
      clearTimeout(continueTimer)
      spec.peer.noPayloadSync = false
      spec.peer.seen100 = true
      sendBody()
    }, () => {
      gotResponse = true
      clearTimeout(continueTimer)
    })

    const listen = (c: PooledConnection): void => {
      c.handler = {
        data: (d) => {
          if (done) return
          try {
            parser.push(d)
          } catch (err) {
            fail(err)
            return
          }
          if (parser.done !== undefined) finish()
        },
        error: (err) => {
          if (done) return
          const code = err.code
          if (code === 'ECONNRESET' || code === 'EPIPE') {
            // http-client-connection.c: a failed write is "Remote disconnected"
            // (EPIPE/ECONNRESET, line 327); a read at EOF or reset "read(<peer>) failed: …" (lines 1288-1294)
            if (err.syscall === 'write') fail(lost('Remote disconnected'))
            else fail(lost(`read(${streamName(c.peer, c.id)}) failed: ${STRERROR[code] ?? code}`))
            return
          }
          fail(err)
        },
        end: () => {
          if (done) return
          if (parser.end()) finish()
          else fail(lost(`read(${streamName(c.peer, c.id)}) failed: EOF`))
        },
        close: () => fail(lost(`read(${streamName(c.peer, c.id)}) failed: EOF`)),
      }
    }
    // request_timeout_msecs runs once the connection is up and the request goes out
    const send = (s: net.Socket): void => {
      if (spec.timeoutMs <= MAX_TIMER_MS) conn!.requestTimer.arm(spec.timeoutMs, () => fail(new AttemptTimeout(conn?.connectedAt)), true)
      if (body === undefined) s.write(head)
      else if (!spec.sync) {
        bodySent = true
        s.write(Buffer.concat([head, body]))
      } else {
        s.write(head)
        // http_client_connection_next_request: the 2 s wait for 100 starts once the header is sent
        if (!spec.peer.seen100) {
          continueTimer = setTimeout(() => {
            spec.peer.noPayloadSync = true
            sendBody()
          }, CONTINUE_TIMEOUT_MSECS)
        }
      }
    }

    const pooled = pool.take(key)
    if (pooled !== undefined) {
      conn = pooled
      socket = pooled.socket
      listen(pooled)
      send(socket)
      return
    }
    if (spec.tunnel !== undefined) {
      // the tunnel's connection gets its id before the proxy connection it runs over
      // (http_client_connection_create: connection_init, then connect_tunnel)
      const id = spec.nextConnectionId()
      openTunnel(spec, spec.tunnel).then((s) => {
        const c = new PooledConnection(s, performance.now(), peerAddr(spec.tunnel!.ip, spec.tunnel!.port), id)
        conn = c
        socket = s
        if (done) return void s.destroy()
        listen(c)
        send(s)
      }, fail)
      return
    }
    const started = performance.now()
    const id = spec.nextConnectionId()
    // https: TLS on the connection; Dovecot's connect timer covers the handshake too (http_client_connection_connect)
    const s: net.Socket = spec.tls
      ? tls.connect({ host: spec.host, port: spec.port, ...tlsOptions(spec.servername, spec.ca) })
      : net.connect({ host: spec.host, port: spec.port })
    socket = s
    s.setNoDelay(true)
    let handshaking = false
    const handshakeName = (): string => peerAddr(s.remoteAddress ?? spec.host, s.remotePort ?? spec.port)
    if (spec.connectTimeoutMs <= MAX_TIMER_MS) {
      connectTimer = setTimeout(() => {
        const secs = fmtSecs(performance.now() - started)
        fail(new ConnectFailed(handshaking
          ? `SSL handshaking with ${handshakeName()} failed: Connection timed out in ${secs} secs`
          : `connect(${peerAddr(spec.host, spec.port)}) failed: Connection timed out in ${secs} secs`))
      }, spec.connectTimeoutMs)
    }
    const early = (err: NodeJS.ErrnoException): void => {
      const code = err.code
      if (handshaking && (code === 'ECONNRESET' || code === 'EPIPE')) {
        // http_client_connection_input: "SSL handshaking with %s failed: read(%s) failed: …" (lines 1010-1021)
        fail(new ConnectFailed(`SSL handshaking with ${handshakeName()} failed: read(${streamName(handshakeName(), id)}) failed: ${err.syscall === 'read' ? STRERROR[code] ?? code : 'EOF'}`))
        return
      }
      fail(err) // refused, unreachable, lookup failed, certificate refused: classify() words them
    }
    s.on('error', early)
    const ready = (): void => {
      clearTimeout(connectTimer)
      s.removeListener('error', early)
      s.removeListener('close', earlyClose)
      const c = new PooledConnection(s, connectedAtTcp, handshakeName(), id)
      conn = c
      if (done) return
      listen(c)
      send(s)
    }
    // the peer hung up during the handshake
    const earlyClose = (): void => {
      if (handshaking) fail(new ConnectFailed(`SSL handshaking with ${handshakeName()} failed: read(${streamName(handshakeName(), id)}) failed: EOF`))
    }
    let connectedAtTcp = 0
    s.once('connect', () => {
      connectedAtTcp = performance.now()
      handshaking = spec.tls
      if (!spec.tls) ready()
    })
    if (spec.tls) {
      s.on('close', earlyClose)
      s.once('secureConnect', () => {
        handshaking = false
        ready()
      })
    }
  })
}

/**
 * A TLS connection to the origin through the proxy (lib-http
 * http_client_connection_connect_tunnel): a proxy connection (an idle one
 * of the pool, as Dovecot takes, or a new one), `CONNECT ip:port`, and on
 * 200 the TLS handshake inside it. The connect timeout covers it all.
 */
function openTunnel(spec: AttemptSpec, t: TunnelSpec): Promise<tls.TLSSocket> {
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const name = peerAddr(t.ip, t.port)
    const proxyKey = peerAddr(t.proxyHost, t.proxyPort)
    const started = performance.now()
    let settled = false
    let raw: net.Socket | undefined
    const fail = (err: unknown): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      raw?.destroy()
      reject(err)
    }
    const timer = spec.connectTimeoutMs <= MAX_TIMER_MS
      ? setTimeout(() => fail(new ConnectFailed(`Tunnel connect(${name}) failed: Connection timed out in ${fmtSecs(performance.now() - started)} secs`)), spec.connectTimeoutMs)
      : undefined
    const handshake = (s: net.Socket): void => {
      const secure = tls.connect({ socket: s, ...tlsOptions(t.servername, spec.ca) })
      secure.once('error', fail)
      secure.once('secureConnect', () => {
        if (settled) return void secure.destroy()
        settled = true
        clearTimeout(timer)
        secure.removeListener('error', fail)
        secure.setNoDelay(true)
        resolve(secure)
      })
    }
    const connectOver = (c: PooledConnection): void => {
      raw = c.socket
      const parser = new ResponseParser(false, () => {}, undefined, true)
      const lost = (): void => fail(new ConnectionLost(`read(${streamName(c.peer, c.id)}) failed: EOF`, c.connectedAt))
      c.handler = {
        data: (d) => {
          try {
            parser.push(d)
          } catch (err) {
            fail(err)
            return
          }
          const res = parser.done
          if (res === undefined) return
          if (res.status !== 200) {
            // http_client_connection_tunnel_response: "Tunnel connect(%s) failed: %s", the status line's message
            fail(new ConnectFailed(`Tunnel connect(${name}) failed: ${res.status} ${res.reason}`))
            return
          }
          // the proxy connection is the tunnel now: it leaves the pool for good
          c.handler = { data: () => {}, error: () => {}, end: () => {}, close: () => {} }
          c.requestTimer.dispose()
          c.idleTimer.dispose()
          handshake(c.socket)
        },
        error: fail,
        end: lost,
        close: lost,
      }
      c.socket.write(t.head)
    }
    const pooled = spec.pool.take(proxyKey)
    if (pooled !== undefined) return connectOver(pooled)
    const s = net.connect({ host: t.proxyHost, port: t.proxyPort })
    raw = s
    s.setNoDelay(true)
    const early = (err: Error): void => fail(err)
    s.once('error', early)
    s.once('connect', () => {
      s.removeListener('error', early)
      const c = new PooledConnection(s, performance.now(), peerAddr(s.remoteAddress ?? t.proxyHost, s.remotePort ?? t.proxyPort), spec.nextConnectionId())
      if (settled) return void s.destroy()
      connectOver(c)
    })
  })
}

/** Bytes as a latin1 string: the head is written as latin1, so the UTF-8 bytes of the script's string go out unchanged, as Dovecot sends them. */
function wire(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1')
}

// http_date_create(ioloop_time): whole seconds, so one text per second
let dateSecond = -1
let dateText = ''
function httpDate(): string {
  const now = Date.now()
  const sec = Math.floor(now / 1000)
  if (sec !== dateSecond) {
    dateSecond = sec
    dateText = new Date(sec * 1000).toUTCString()
  }
  return dateText
}

const isPostOrPut = (m: string): boolean => /^(post|put)$/i.test(m)

/** submit(): attempts, retries and redirects; never rejects. */
export async function perform(env: LuaEnv, rq: RequestState): Promise<ResponseState> {
  const { settings } = rq.client
  const s = settings.uint
  const limits = rq.client.v24 !== undefined ? requestLimits(rq.client.v24, rq.method) : undefined
  const timeoutMs = limits?.timeoutMs ?? (s.request_timeout_msecs || DEFAULT_REQUEST_TIMEOUT_MSECS)
  const connectTimeoutMs = s.connect_timeout_msecs || timeoutMs
  const maxAttempts = limits?.attempts ?? Math.max(1, s.max_attempts ?? 0)
  const maxRedirects = s.max_redirects ?? 0
  const noAutoRetry = settings.bool.no_auto_retry === true
  const noAutoRedirect = settings.bool.no_auto_redirect === true
  const target = env.httpTarget
  const v24 = env.dovecot === '2.4'

  // Fixed at submit for every attempt and redirect (http_client_request_do_submit:
  // req->date = ioloop_time; the user:pass@ of the request's URL stays with it).
  const date = httpDate() // IMF-fixdate, as http_date_create
  const has = (n: string): boolean => rq.added.has(n)
  const ua = settings.str.user_agent
  // http_client_request_url: a non-empty user with a password (WHATWG URLs
  // cannot tell `user@` from `user:@`, so `user@` sends `user:` where Dovecot sends nothing)
  const auth = rq.url.username !== '' && !has('authorization')
    ? `Basic ${Buffer.from(`${decodeUserinfo(rq.url.username)}:${decodeUserinfo(rq.url.password)}`, 'utf8').toString('base64')}`
    : undefined
  const scriptHeaders = rq.headers.map(([k, v]): [string, string] => [wire(k), wire(v)])

  // proxy_url: an http:// request goes to the proxy with the absolute URL as
  // its target, Proxy-Authorization from the proxy URL's user:pass and no
  // Connection: Keep-Alive (http_client_request_do_submit, _send_real).
  // https:// goes through a CONNECT tunnel (openTunnel). Recorded from
  // 2.3.19.1 (https://127.0.0.1:4443/ through the proxy): the CONNECT goes on
  // a pooled proxy connection as
  //   CONNECT 127.0.0.1:4443 HTTP/1.1 / Host: 127.0.0.1:4443 / Date /
  //   Proxy-Authorization / User-Agent (no Content-Length, no Connection)
  // then a TLS ClientHello with SNI even for an IP; with a host name it first
  // fails the origin's lookup (9002). The request inside the tunnel was not
  // seen: it follows the source (absolute target since a proxy is set,
  // Connection: Keep-Alive and no Proxy-Authorization since it is not sent
  // to the proxy, http_client_request_to_proxy).
  const proxyText = settings.str.proxy_url
  const proxyParsed = proxyText !== undefined ? parseHttpUrl(proxyText) : undefined
  const proxy = proxyParsed?.ok === true ? proxyParsed.url : undefined
  // 2.3: the proxy URL's user:pass (dlua parses it with HTTP_URL_ALLOW_USERINFO_PART);
  // 2.4: proxy_username/proxy_password, sent when the username is not empty
  // (the password defaults to "", so "user:"), http_client_request_send_real
  const set24 = rq.client.v24
  const proxyUser = proxy === undefined ? undefined
    : set24 !== undefined ? (set24.proxy_username !== '' ? [String(set24.proxy_username), String(set24.proxy_password)] : undefined)
      : proxy.username !== '' && proxy.password !== '' ? [decodeUserinfo(proxy.username), decodeUserinfo(proxy.password)] : undefined
  const proxyAuth = proxyUser !== undefined ? `Basic ${Buffer.from(`${proxyUser[0]}:${proxyUser[1]}`, 'utf8').toString('base64')}` : undefined

  let url = rq.url
  let method = rq.method
  let payload = rq.payload
  let redirects = 0
  let attempts = 0
  const queued = performance.now()
  let firstAttempt = queued
  let attemptStart = queued

  for (;;) {
    const viaProxy = proxy !== undefined && url.protocol === 'http:'
    // https:// through the proxy: a CONNECT tunnel (not in --http capture, where everything goes to the sink in plain text)
    const tunnelled = proxy !== undefined && url.protocol === 'https:' && target === undefined
    const peer = peerState(env, viaProxy ? proxy : url)
    // payload_sync: set_payload(…, TRUE) in 2.3 (always) or with 2.4's 2nd
    // argument, for a non-empty payload, unless the peer failed 100-continue before
    const sync = payload !== undefined && payload.length > 0 && (!v24 || rq.synchronous) && !peer.noPayloadSync
    const headers: Array<[string, string]> = []
    if (!has('host')) headers.push(['Host', url.host])
    if (!has('date')) headers.push(['Date', date])
    if (auth !== undefined) headers.push(['Authorization', auth])
    if (viaProxy && proxyAuth !== undefined) headers.push(['Proxy-Authorization', proxyAuth])
    if (!has('user-agent') && ua !== undefined) headers.push(['User-Agent', wire(ua)])
    if (!has('expect') && sync) headers.push(['Expect', '100-continue'])
    if ((payload !== undefined || isPostOrPut(method)) && !has('content-length') && !has('transfer-encoding')) {
      headers.push(['Content-Length', String(payload?.length ?? 0)])
    }
    if (!has('connection') && !viaProxy) headers.push(['Connection', 'Keep-Alive'])
    for (const h of scriptHeaders) headers.push(h)

    const tls = url.protocol === 'https:' && target === undefined && !tunnelled
    // with a proxy the target is the absolute URL, inside a tunnel too (http_client_request_do_submit)
    const path = viaProxy || tunnelled ? `${url.protocol}//${url.host}${url.pathname}${url.search}` : `${url.pathname}${url.search}`
    attempts++
    attemptStart = performance.now()
    if (attempts === 1) firstAttempt = attemptStart
    if (settings.bool.debug === true) env.log.debug({ method, url: redact(url), attempt: attempts }, 'dovecot.http: sending request')
    let res: AttemptResult
    try {
      let tunnel: TunnelSpec | undefined
      if (tunnelled) {
        // the CONNECT names the origin's address: looked up first (2.3.19.1: 9002 for any host name)
        const host = urlHost(url)
        const ip = net.isIP(host) !== 0 ? host : (await lookup(host)).address
        const authority = peerAddr(ip, urlPort(url))
        tunnel = {
          proxyHost: urlHost(proxy),
          proxyPort: urlPort(proxy),
          ip,
          port: urlPort(url),
          servername: net.isIP(host) !== 0 ? undefined : host,
          // recorded from 2.3.19.1: Host, Date, Proxy-Authorization, User-Agent; no Content-Length, no Connection
          head: Buffer.from(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nDate: ${date}\r\n` +
            (proxyAuth !== undefined ? `Proxy-Authorization: ${proxyAuth}\r\n` : '') +
            (ua !== undefined ? `User-Agent: ${wire(ua)}\r\n` : '') + '\r\n', 'latin1'),
        }
      }
      res = await attempt({
        ...(tunnel !== undefined ? { tunnel, poolKey: `${peerAddr(tunnel.proxyHost, tunnel.proxyPort)} tunnel ${peerAddr(tunnel.ip, tunnel.port)}` } : {}),
        pool: poolFor(env, rq.client),
        ca: env.httpCa,
        idleMs: idleMsOf(rq.client),
        nextConnectionId: () => ++poolsOf(env).lastConnectionId,
        tls,
        // --http capture: every connection goes to the built-in sink, the Host header stays the URL's
        host: target?.host ?? urlHost(viaProxy ? proxy : url),
        port: target?.port ?? urlPort(viaProxy ? proxy : url),
        servername: tls && net.isIP(urlHost(url)) === 0 ? urlHost(url) : undefined,
        method,
        path: path === '' ? '/' : path,
        headers,
        body: payload,
        timeoutMs,
        connectTimeoutMs,
        sync,
        peer,
      })
    } catch (err) {
      const timing = (connected?: number): string => {
        const now = performance.now()
        return `Request queued ${fmtSecs(now - queued)} secs ago, ${attempts} send attempts in ${fmtSecs(now - firstAttempt)} secs, ` +
          `${fmtSecs(now - queued)} in http ioloop, 0.000 in other ioloops, connected ${fmtSecs(now - (connected ?? attemptStart))} secs ago`
      }
      const failure = classify(err, url, timing)
      if (failure.retryable && !noAutoRetry && attempts < maxAttempts) continue
      return { status: failure.status, reason: failure.reason, payload: new Uint8Array(0), headers: [] }
    }

    // 417 to Expect: drop Expect for the peer and retry when attempts are left (lines 1204-1209)
    if (res.status === 417 && sync && res.payloadWithheld) {
      peer.noPayloadSync = true
      if (attempts < maxAttempts) continue
    }
    // 408 is retried like a timeout (HC); 503 + Retry-After retries are not simulated.
    if (res.status === 408 && !noAutoRetry && attempts < maxAttempts) continue

    const location = res.headers.find(([k]) => k.toLowerCase() === 'location')?.[1]
    if (!noAutoRedirect && res.status >= 300 && res.status < 400 && res.status !== 304 && location !== undefined) {
      // http_client_request_redirect parses the location first, with no base URL (so a relative
      // one is invalid), then counts: max_redirects 0 → "Redirect refused" (spec §7.1), else
      // "Redirected more than %d times" (lib-http/http-client-request.c, 2.3.19.1)
      const parsed = parseHttpUrl(location)
      if (!parsed.ok) return { status: ERR_INVALID_REDIRECT, reason: `Invalid redirect location: ${parsed.reason}`, payload: new Uint8Array(0), headers: [] }
      if (redirects >= maxRedirects) {
        const reason = maxRedirects === 0 ? 'Redirect refused' : `Redirected more than ${maxRedirects} times`
        return { status: ERR_INVALID_REDIRECT, reason, payload: new Uint8Array(0), headers: [] }
      }
      const next = parsed.url
      redirects++
      // RFC 7231 6.4.4: a 303 turns anything but HEAD into GET without payload
      if (res.status === 303 && method.toUpperCase() !== 'HEAD' && method.toUpperCase() !== 'GET') {
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
