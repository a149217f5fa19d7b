// `dovepush serve`: an HTTP server that takes transactions (POST
// /v1/transactions, the NDJSON input format as JSON, a JSON array or NDJSON)
// and runs them through the same Host as `dovepush run`: one session per
// user, per-user order, users in parallel up to `concurrency`.
//
// A request is validated whole before anything of it is queued; it is then
// queued whole or refused whole (503 + Retry-After when the queue is full):
// a transaction is never dropped without the client being told. 202 answers
// once queued; `?wait=true` answers after the transactions ran, with the
// calls made into the script, its errors and its dovecot.http requests.
//
// Startable in-process (tests, bench): startServe() → { url, close() };
// src/cli/serve.ts wraps it with flags and signals.

import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import type { Settings } from '../config/settings.js'
import { checkScriptSyntax, createLuaHost, type ScriptCall, type ScriptHttpRequest } from '../drivers/lua.js'
import { InvalidArgumentError, ScriptLoadError } from '../errors.js'
import type { PushEvent, TransactionUnit } from '../events/types.js'
import type { Host } from '../host/host.js'
import { CaptureSink } from '../http/capture-sink.js'
import { createEngine, type EngineName } from '../lua/engine.js'
import type { DovecotVersion } from '../lua/env.js'
import { createLogger } from '../log/logger.js'
import { bodyKind, parseBody } from './body.js'
import { type RejectReason, type Route, ServeMetrics } from './metrics.js'
import { UserQueue } from './queue.js'
import type { FullGc } from '../lua/stdlib/gc.js'

export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 8025,
  concurrency: 32,
  queueSize: 10_000,
  maxBody: 1024 * 1024,
  maxSessions: 1000,
  retryAfterSeconds: 1,
} as const

export interface ServeOptions {
  readonly script: string
  readonly settings?: Settings
  /** Per-user settings, merged over `settings` (the conformance run passes a scenario's users). */
  readonly users?: Readonly<Record<string, Settings>>
  /** User of bare events and of transactions without `user` (default `user@example.test`). */
  readonly user?: string
  /** `user.service` when a transaction names none (default `imap`). */
  readonly service?: string
  readonly engine?: EngineName
  readonly dovecot?: DovecotVersion
  /** Per-call limit of Lua execution, ms; 0 = none (default 5000). */
  readonly callTimeoutMs?: number
  /** Memory cap per Lua state, bytes; 0 = none (default 256 MiB). */
  readonly memoryLimit?: number
  /** When the full GC after each transaction runs; default 'observable'. */
  readonly fullGc?: FullGc
  /** `capture`: script requests go to a built-in sink answering 200 (default `real`). */
  readonly http?: 'real' | 'capture'
  /** Listen address (default 127.0.0.1). */
  readonly host?: string
  /** Listen port, 0 = any free one (default 8025). */
  readonly port?: number
  /** Bearer token every request but GET /healthz must carry. */
  readonly token?: string
  /** Allow a non-loopback address without a token. */
  readonly insecureNoAuth?: boolean
  /** Users whose transactions run at the same time (default 32). */
  readonly concurrency?: number
  /** Transactions waiting before POSTs get 503 (default 10000). */
  readonly queueSize?: number
  /** Largest request body, bytes (default 1 MiB). */
  readonly maxBody?: number
  /** Live sessions kept before idle ones end (default 1000). */
  readonly maxSessions?: number
  /** End a session no transaction has used for this many seconds (default 0: never). */
  readonly sessionIdleSeconds?: number
  /** Retry-After of a 503, seconds (default 1). */
  readonly retryAfterSeconds?: number
  /** Default: JSON lines on stdout at info. */
  readonly log?: Logger
}

export interface ServeCounts {
  /** Body items (transactions, or `transactions` groups) accepted into the queue. */
  accepted: number
  /** Valid items refused (503 or 413 for too many). */
  rejected: number
  /** Requests answered with a 4xx. */
  badRequests: number
}

export interface ServeHandle {
  /** `http://host:port` (IPv6 in brackets). */
  readonly url: string
  readonly port: number
  readonly host: Host
  readonly metrics: ServeMetrics
  readonly counts: Readonly<ServeCounts>
  /** Transactions waiting, and users running. */
  readonly queue: { readonly depth: number; readonly running: number }
  /** Stops taking requests, runs what is queued, ends the sessions (script_deinit), stops the server. Idempotent. */
  close(): Promise<void>
}

/** A call into the script, as `?wait=true` reports it. */
export interface WaitCall {
  readonly fn: string
  readonly session: string
  readonly event?: PushEvent
  readonly committed?: boolean
  readonly error?: string
}

/** A dovecot.http request, as `?wait=true` reports it (URL without credentials). */
export interface WaitRequest {
  /** dovecot.http or socket.http */
  readonly module: string
  readonly method: string
  readonly url: string
  /** 9xxx: dovecot.http's internal failures; 0: socket.http failed */
  readonly status: number
  readonly reason: string
  readonly ms: number
}

/** What one body item did, in `?wait=true` answers. */
export interface WaitResult {
  /** Position in the body (0-based; NDJSON: non-empty line order). */
  readonly index: number
  readonly user: string
  readonly calls: WaitCall[]
  readonly errors: Array<{ readonly fn: string; readonly error: string }>
  readonly requests: WaitRequest[]
}

interface Waiting {
  readonly results: WaitResult[]
  left: number
  readonly answer: () => void
}

interface Job {
  readonly unit: TransactionUnit
  readonly result: WaitResult | undefined
  readonly waiting: Waiting | undefined
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/

/** Whether a listen host only takes connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  return h === 'localhost' || h === '::1' || LOOPBACK_V4.test(h) || (h.startsWith('::ffff:') && LOOPBACK_V4.test(h.slice(7)))
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()

const JSON_TYPE = 'application/json; charset=utf-8'
const ROUTES: Readonly<Record<string, readonly string[]>> = {
  '/v1/transactions': ['POST'],
  '/healthz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
}

function userSettings(base: Settings, users: Readonly<Record<string, Settings>>): (user: string) => Settings {
  const merged = new Map(Object.entries(users).map(([u, s]) => [u, { ...base, ...s }]))
  return (user) => merged.get(user) ?? base
}

export async function startServe(o: ServeOptions): Promise<ServeHandle> {
  const listenHost = o.host ?? SERVE_DEFAULTS.host
  const token = o.token
  if (token !== undefined && token === '') throw new InvalidArgumentError('token: empty')
  if (!isLoopback(listenHost) && token === undefined && o.insecureNoAuth !== true) {
    throw new InvalidArgumentError(`--listen ${listenHost}: not a loopback address; anyone who reaches it could run transactions: give --token-file, or --insecure-no-auth to serve without authentication`)
  }
  const concurrency = positiveInt('concurrency', o.concurrency ?? SERVE_DEFAULTS.concurrency)
  const queueSize = positiveInt('queue size', o.queueSize ?? SERVE_DEFAULTS.queueSize)
  const maxBody = positiveInt('max body', o.maxBody ?? SERVE_DEFAULTS.maxBody)
  const retryAfter = String(Math.max(1, Math.ceil(o.retryAfterSeconds ?? SERVE_DEFAULTS.retryAfterSeconds)))
  const defaultUser = o.user ?? 'user@example.test'
  const log = o.log ?? createLogger({ format: 'json', level: 'info' })

  const engine = await createEngine(o.engine ?? 'wasmoon')
  const syntax = checkScriptSyntax(engine, o.script)
  if (syntax !== undefined) throw new ScriptLoadError(syntax)

  const sink = o.http === 'capture' ? new CaptureSink() : undefined
  const httpTarget = sink !== undefined ? await sink.start() : undefined

  // ?wait=true: the result of the job each user is running now (a user runs one job at a time)
  const current = new Map<string, WaitResult>()
  let metrics: ServeMetrics | undefined
  const onCall = (call: ScriptCall): void => {
    if (current.size === 0) return
    const r = current.get(call.user)
    if (r === undefined) return
    r.calls.push({
      fn: call.fn,
      session: call.session,
      ...(call.event !== undefined ? { event: call.event } : {}),
      ...(call.committed !== undefined ? { committed: call.committed } : {}),
      ...(call.error !== undefined ? { error: call.error } : {}),
    })
    if (call.error !== undefined) r.errors.push({ fn: call.fn, error: call.error })
  }
  const onHttpRequest = (q: ScriptHttpRequest): void => {
    metrics!.scriptHttp(q.module, q.method, q.status, q.ms)
    if (current.size === 0) return
    current.get(q.user)?.requests.push({ module: q.module, method: q.method, url: q.url, status: q.status, reason: q.reason, ms: Math.round(q.ms * 1000) / 1000 })
  }

  const host = createLuaHost({
    ...(httpTarget !== undefined ? { httpTarget } : {}),
    scriptPath: o.script,
    engine,
    dovecot: o.dovecot ?? '2.3',
    settings: o.settings ?? {},
    ...(o.users !== undefined ? { settingsFor: userSettings(o.settings ?? {}, o.users) } : {}),
    log,
    callTimeoutMs: o.callTimeoutMs ?? 5000,
    memoryLimit: o.memoryLimit ?? 256 * 1024 * 1024,
    ...(o.fullGc !== undefined ? { fullGc: o.fullGc } : {}),
    defaultService: o.service ?? 'imap',
    maxSessions: o.maxSessions ?? SERVE_DEFAULTS.maxSessions,
    idleSessionMs: (o.sessionIdleSeconds ?? 0) * 1000,
    onCall,
    onHttpRequest,
  })

  const finish = (job: Job): void => {
    if (sink !== undefined && sink.requests.length >= 1024) sink.requests.length = 0 // capture mode keeps nothing
    const w = job.waiting
    if (w === undefined) return
    current.delete(job.unit.user)
    if (--w.left === 0) w.answer()
  }
  const failed = (job: Job, err: unknown): void => {
    log.error({ err, user: job.unit.user }, `dovepush: a transaction failed inside dovepush (a bug): ${err instanceof Error ? err.message : String(err)}`)
    job.result?.errors.push({ fn: '(dovepush)', error: err instanceof Error ? err.message : String(err) })
  }
  const queue = new UserQueue<Job>({
    capacity: queueSize,
    concurrency,
    key: (job) => job.unit.user,
    run: (job) => {
      if (job.result !== undefined) current.set(job.unit.user, job.result)
      let r: void | Promise<void>
      try {
        r = host.submit(job.unit)
      } catch (err) {
        failed(job, err)
        return finish(job)
      }
      if (r instanceof Promise) {
        return r.then(
          () => finish(job),
          (err: unknown) => {
            failed(job, err)
            finish(job)
          },
        )
      }
      finish(job)
    },
    onError: failed,
  })
  metrics = new ServeMetrics(host.stats, queue)
  const m = metrics
  const counts: ServeCounts = { accepted: 0, rejected: 0, badRequests: 0 }

  let closing = false
  let queueWasFull = false
  const tokenDigest = token !== undefined ? sha256(token) : undefined

  const send = (res: ServerResponse, route: Route, status: number, body: string, headers: Record<string, string> = {}, type = JSON_TYPE): void => {
    m.request(route, status)
    if (status >= 400 && status < 500) counts.badRequests++
    const h: Record<string, string | number> = { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers }
    if (closing) h.connection = 'close'
    res.writeHead(status, h)
    res.end(body)
  }
  const sendError = (res: ServerResponse, route: Route, status: number, code: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void => {
    if (log.isLevelEnabled('debug')) log.debug({ status, code }, `serve: ${status}: ${message}`)
    send(res, route, status, JSON.stringify({ error: { code, message, ...extra } }), headers)
  }

  const authorized = (req: IncomingMessage, res: ServerResponse, route: Route): boolean => {
    if (tokenDigest === undefined) return true
    const h = req.headers.authorization
    const challenge = { 'www-authenticate': 'Bearer realm="dovepush"' }
    if (h === undefined || h === '') {
      sendError(res, route, 401, 'DOVEPUSH_ERR_UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>" (the token of --token-file)', {}, challenge)
      return false
    }
    const m = /^Bearer +(\S+) *$/i.exec(h)
    if (m === null) {
      sendError(res, route, 401, 'DOVEPUSH_ERR_UNAUTHORIZED', 'malformed Authorization header: expected "Bearer <token>"', {}, challenge)
      return false
    }
    if (!timingSafeEqual(sha256(m[1]!), tokenDigest)) {
      sendError(res, route, 401, 'DOVEPUSH_ERR_UNAUTHORIZED', 'wrong bearer token', {}, challenge)
      return false
    }
    return true
  }

  const reject = (res: ServerResponse, reason: RejectReason, n: number, status: number, code: string, message: string, headers: Record<string, string> = {}): void => {
    m.rejected(reason, n)
    counts.rejected += n
    sendError(res, '/v1/transactions', status, code, message, {}, headers)
  }

  const ingest = (req: IncomingMessage, res: ServerResponse, query: string): void => {
    let wait = false
    if (query !== '') {
      for (const [k, v] of new URLSearchParams(query)) {
        if (k !== 'wait') return sendError(res, '/v1/transactions', 400, 'DOVEPUSH_ERR_INPUT', `unknown query parameter "${k}" (known: wait)`)
        if (v === 'true' || v === '1' || v === '') wait = true
        else if (v === 'false' || v === '0') wait = false
        else return sendError(res, '/v1/transactions', 400, 'DOVEPUSH_ERR_INPUT', `wait: expected true or false, got "${v}"`)
      }
    }
    const tooLarge = (): void =>
      sendError(res, '/v1/transactions', 413, 'DOVEPUSH_ERR_TOO_LARGE', `request body larger than ${maxBody} bytes (--max-body); send fewer transactions per request`, { max_body: maxBody }, { connection: 'close' })
    const length = req.headers['content-length']
    if (length !== undefined && Number(length) > maxBody) return tooLarge()
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (c: Buffer) => {
      if (over) return
      size += c.length
      if (size > maxBody) {
        over = true
        chunks.length = 0
        tooLarge()
        return
      }
      chunks.push(c)
    })
    req.on('error', () => {}) // the client went away: nothing was queued
    req.on('end', () => {
      if (over) return
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8')
      const parsed = parseBody(text, { user: defaultUser, kind: bodyKind(req.headers['content-type']) })
      if (!parsed.ok) {
        const [first] = parsed.errors
        const more = parsed.errorCount > 1 ? ` (and ${parsed.errorCount - 1} more; nothing was queued)` : ''
        const { message: _m, ...where } = first!
        return sendError(res, '/v1/transactions', 400, 'DOVEPUSH_ERR_INPUT', first!.message + more, {
          ...where,
          ...(parsed.errorCount > 1 ? { errors: parsed.errors, error_count: parsed.errorCount } : {}),
        })
      }
      const units = parsed.units
      const n = units.length
      if (closing) return reject(res, 'shutting_down', n, 503, 'DOVEPUSH_ERR_SHUTTING_DOWN', 'the server is shutting down: nothing of this request was queued')
      if (n > queue.capacity) {
        return reject(res, 'too_many', n, 413, 'DOVEPUSH_ERR_TOO_LARGE', `${n} transactions in one request, more than the queue holds (--queue-size ${queue.capacity}); nothing was queued`)
      }
      let waiting: Waiting | undefined
      const jobs: Job[] = new Array<Job>(n)
      if (wait) {
        const results: WaitResult[] = []
        waiting = {
          results,
          left: n,
          answer: () => send(res, '/v1/transactions', 200, JSON.stringify({ accepted: n, results })),
        }
        for (let i = 0; i < n; i++) {
          const result: WaitResult = { index: i, user: units[i]!.user, calls: [], errors: [], requests: [] }
          results.push(result)
          jobs[i] = { unit: units[i]!, result, waiting }
        }
      } else {
        for (let i = 0; i < n; i++) jobs[i] = { unit: units[i]!, result: undefined, waiting: undefined }
      }
      if (!queue.offer(jobs)) {
        if (!queueWasFull) {
          queueWasFull = true
          log.warn({ depth: queue.depth, capacity: queue.capacity }, `serve: queue full (${queue.depth} transactions waiting): answering 503 with Retry-After: ${retryAfter}`)
        }
        return reject(res, 'queue_full', n, 503, 'DOVEPUSH_ERR_QUEUE_FULL',
          `queue full (${queue.depth} of ${queue.capacity} transactions waiting): nothing of this request was queued; retry after ${retryAfter} s`, { 'retry-after': retryAfter })
      }
      queueWasFull = false
      m.accepted(n)
      counts.accepted += n
      if (!wait) send(res, '/v1/transactions', 202, `{"accepted":${n}}`)
    })
  }

  const server = createServer((req, res) => {
    const raw = req.url ?? '/'
    const q = raw.indexOf('?')
    const path = q < 0 ? raw : raw.slice(0, q)
    const method = req.method ?? 'GET'
    const allowed = ROUTES[path]
    if (allowed === undefined) {
      return sendError(res, 'other', 404, 'DOVEPUSH_ERR_NOT_FOUND', `no such path: ${method} ${path} (this server has POST /v1/transactions, GET /healthz, GET /metrics)`)
    }
    const route = path as Route
    if (!allowed.includes(method)) {
      return sendError(res, route, 405, 'DOVEPUSH_ERR_METHOD', `${method} ${path}: method not allowed (allowed: ${allowed.join(', ')})`, {}, { allow: allowed.join(', ') })
    }
    if (path === '/healthz') {
      const body = JSON.stringify({ status: closing ? 'draining' : 'ok', queue: { depth: queue.depth, capacity: queue.capacity, running_users: queue.running } })
      return send(res, route, closing ? 503 : 200, body)
    }
    if (!authorized(req, res, route)) return
    if (path === '/metrics') {
      m.registry.metrics().then(
        (text) => send(res, route, 200, text, {}, m.registry.contentType),
        (err: unknown) => sendError(res, route, 500, 'DOVEPUSH_ERR_INTERNAL', `metrics: ${err instanceof Error ? err.message : String(err)}`),
      )
      return
    }
    if (closing) {
      return reject(res, 'shutting_down', 0, 503, 'DOVEPUSH_ERR_SHUTTING_DOWN', 'the server is shutting down: nothing of this request was queued', { 'retry-after': retryAfter })
    }
    ingest(req, res, q < 0 ? '' : raw.slice(q + 1))
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || (err.code === 'ECONNRESET' && !socket.readable)) {
      socket.destroy()
      return
    }
    const [status, text] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request']
    const body = JSON.stringify({ error: { code: 'DOVEPUSH_ERR_HTTP', message: `malformed HTTP request: ${err.message}` } })
    socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  })

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen(o.port ?? SERVE_DEFAULTS.port, listenHost, () => {
      server.off('error', onError)
      resolve()
    })
  }).catch(async (err: unknown) => {
    await sink?.close()
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EADDRNOTAVAIL' ? 'address not available on this machine' : e.message
    throw new ListenError(`listen ${listenHost}:${o.port ?? SERVE_DEFAULTS.port}: ${why}`, { cause: err })
  })
  const address = server.address() as AddressInfo
  const urlHost = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address
  const serverClosed = new Promise<void>((resolve) => server.once('close', () => resolve()))
  log.info({ url: `http://${urlHost}:${address.port}`, script: o.script, concurrency, queue_size: queueSize, auth: token !== undefined }, 'serve: listening')

  let closed: Promise<void> | undefined
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      server.close()
      server.closeIdleConnections()
      await queue.idle()
      await host.close()
      await sink?.close()
      // answers still being written (and bodies still arriving, which get 503) get a moment
      let timer: NodeJS.Timeout | undefined
      await Promise.race([serverClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))])
      clearTimeout(timer)
      server.closeAllConnections()
      await serverClosed
      log.info({ accepted: counts.accepted, rejected: counts.rejected }, 'serve: stopped')
    })()
    return closed
  }

  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    host,
    metrics: m,
    counts,
    queue,
    close,
  }
}

/** The server could not listen (address in use, permission denied). */
export class ListenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ListenError'
  }
}

function positiveInt(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what}: expected a positive integer, got ${n}`)
  return n
}
