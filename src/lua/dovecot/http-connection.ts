// Plain-HTTP connections of dovecot.http (after lib-http's
// http-client-connection.c): one request at a time per TCP connection, the
// request head written exactly as built (http-transport.ts), the payload
// sent at once or on `100 Continue`, the response read by a small HTTP/1.x
// parser, and idle keep-alive connections pooled per Lua state (http-transport.ts).
//
// node:http did this before; for one sequential POST per event its client
// machinery (ClientRequest, IncomingMessage streams, the agent) cost about
// as much CPU as the whole exchange. TLS connections (https://, direct or
// tunnelled through proxy_url) are node:tls sockets on the same machinery.
//
// The parser takes what lib-http's http-response-parser.c takes in practice:
// `HTTP/1.x <3 digits>[ <reason>]`, header lines (LF or CRLF), a body framed
// by Transfer-Encoding: chunked, Content-Length, or the end of the
// connection; 1xx answers before the final one; no body for HEAD, 204, 304.
// What it refuses is a ResponseError (Dovecot's 9007, "Bad response").

import { Buffer } from 'node:buffer'
import * as net from 'node:net'

/** A response lib-http would not accept: 9007 with this text. */
export class ResponseError extends Error {
  readonly code = 'HPE_INVALID'
}

export interface ParsedResponse {
  readonly status: number
  readonly reason: string
  /** Raw header pairs, in the server's order and case. */
  readonly headers: Array<[string, string]>
  readonly body: Uint8Array
  /** The connection can carry another request. */
  readonly keepAlive: boolean
  /** Seconds from a Keep-Alive: timeout=N header, if any. */
  readonly keepAliveHint: number | undefined
}

type Phase = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'close' | 'done'

/** Incremental HTTP/1.x response parser for one request. */
export class ResponseParser {
  #buf: Buffer = Buffer.alloc(0)
  #phase: Phase = 'head'
  #status = 0
  #reason = ''
  #minor = 1
  #headers: Array<[string, string]> = []
  /** The framing headers, lowercased names, repeated ones joined with ", ". */
  #framing: { 'transfer-encoding'?: string; 'content-length'?: string; connection?: string; 'keep-alive'?: string } = {}
  #chunks: Buffer[] = []
  #remaining = 0
  #response: ParsedResponse | undefined
  /** Bytes after the final response (a server talking out of turn). */
  extra = 0

  /**
   * @param head the request was HEAD (no response body)
   * @param onInterim told of each 1xx answer before the final one
   */
  /** @param connect the answer to a CONNECT: a 2xx has no body (the tunnel starts after its head) */
  constructor(readonly head: boolean, readonly onInterim: (status: number) => void, readonly onFinalHead?: () => void, readonly connect = false) {}

  get done(): ParsedResponse | undefined {
    return this.#response
  }

  /** Feeds bytes; throws ResponseError on a malformed answer. */
  push(data: Buffer): void {
    if (this.#response !== undefined) {
      this.extra += data.length
      return
    }
    this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data])
    while (this.#step()) { /* next phase */ }
  }

  /** The connection ended: completes a close-delimited body; false if the answer is cut short. */
  end(): boolean {
    if (this.#response !== undefined) return true
    if (this.#phase !== 'close') return false
    this.#finish(false)
    return true
  }

  #line(): string | undefined {
    const nl = this.#buf.indexOf(0x0a)
    if (nl < 0) {
      if (this.#buf.length > 65536) throw new ResponseError('Response header too large')
      return undefined
    }
    const end = nl > 0 && this.#buf[nl - 1] === 0x0d ? nl - 1 : nl
    const line = this.#buf.toString('latin1', 0, end)
    this.#buf = this.#buf.subarray(nl + 1)
    return line
  }

  /** The status line and header lines (without the empty line), once all of them are in. */
  #head(): string[] | undefined {
    const buf = this.#buf
    let nl = buf.indexOf(0x0a)
    while (nl >= 0) {
      const blank = buf[nl + 1] === 0x0a ? nl + 2 : buf[nl + 1] === 0x0d && buf[nl + 2] === 0x0a ? nl + 3 : -1
      if (blank > 0) {
        const text = buf.toString('latin1', 0, nl)
        this.#buf = buf.subarray(blank)
        return text.split('\n')
      }
      nl = buf.indexOf(0x0a, nl + 1)
    }
    if (buf.length > 65536) throw new ResponseError('Response header too large')
    return undefined
  }

  /** Moves up to #remaining buffered bytes into the body; true once all of them came. */
  #body(): boolean {
    const n = Math.min(this.#remaining, this.#buf.length)
    if (n > 0) {
      this.#chunks.push(this.#buf.subarray(0, n))
      this.#buf = this.#buf.subarray(n)
      this.#remaining -= n
    }
    return this.#remaining === 0
  }

  #step(): boolean {
    switch (this.#phase) {
      case 'head': {
        const lines = this.#head()
        if (lines === undefined) return false
        const status = lines[0]!.endsWith('\r') ? lines[0]!.slice(0, -1) : lines[0]!
        const m = /^HTTP\/1\.(\d) (\d{3})(?: (.*))?$/.exec(status)
        if (m === null) throw new ResponseError(`Invalid HTTP status line: ${JSON.stringify(status.slice(0, 80))}`)
        this.#minor = Number(m[1])
        this.#status = Number(m[2])
        this.#reason = m[3] ?? ''
        const headers: Array<[string, string]> = []
        const framing: Record<string, string> = {}
        for (let i = 1; i < lines.length; i++) {
          let line = lines[i]!
          if (line.endsWith('\r')) line = line.slice(0, -1)
          const colon = line.indexOf(':')
          if (colon <= 0 || /\s/.test(line.slice(0, colon))) throw new ResponseError(`Invalid header line: ${JSON.stringify(line.slice(0, 80))}`)
          const name = line.slice(0, colon)
          const value = line.slice(colon + 1).trim()
          headers.push([name, value])
          const lower = name.toLowerCase()
          if (lower === 'transfer-encoding' || lower === 'content-length' || lower === 'connection' || lower === 'keep-alive') {
            framing[lower] = framing[lower] === undefined ? value : `${framing[lower]}, ${value}`
          }
        }
        this.#headers = headers
        this.#framing = framing
        return this.#bodyStart()
      }
      case 'length':
        if (!this.#body()) return false
        this.#finish(true)
        return true
      case 'chunk-size': {
        const line = this.#line()
        if (line === undefined) return false
        const m = /^([0-9a-fA-F]+)\s*(?:;.*)?$/.exec(line)
        if (m === null) throw new ResponseError(`Invalid chunk size: ${JSON.stringify(line.slice(0, 80))}`)
        this.#remaining = parseInt(m[1]!, 16)
        this.#phase = this.#remaining === 0 ? 'trailers' : 'chunk-data'
        return true
      }
      case 'chunk-data':
        if (!this.#body()) return false
        this.#phase = 'chunk-end'
        return true
      case 'chunk-end': {
        const line = this.#line()
        if (line === undefined) return false
        if (line !== '') throw new ResponseError('Invalid chunk: missing CRLF after the data')
        this.#phase = 'chunk-size'
        return true
      }
      case 'trailers': {
        const line = this.#line()
        if (line === undefined) return false
        if (line === '') this.#finish(true)
        return true // trailer fields are read and dropped
      }
      case 'close':
        if (this.#buf.length > 0) {
          this.#chunks.push(this.#buf)
          this.#buf = Buffer.alloc(0)
        }
        return false
      case 'done':
        return false
    }
  }

  /** After the header block: an interim answer, or how the body is framed. */
  #bodyStart(): boolean {
    const status = this.#status
    if (status >= 100 && status < 200) {
      this.onInterim(status)
      this.#phase = 'head'
      return true
    }
    this.onFinalHead?.()
    if (this.head || status === 204 || status === 304 || (this.connect && status >= 200 && status < 300)) {
      this.#finish(true)
      return false
    }
    const te = this.#header('transfer-encoding')
    if (te !== undefined && /(^|,)\s*chunked\s*$/i.test(te)) {
      this.#phase = 'chunk-size'
      return true
    }
    const cl = this.#header('content-length')
    if (cl !== undefined) {
      if (!/^\d+$/.test(cl)) throw new ResponseError(`Invalid Content-Length header: ${JSON.stringify(cl)}`)
      this.#remaining = Number(cl)
      if (this.#remaining === 0) {
        this.#finish(true)
        return false
      }
      this.#phase = 'length'
      return true
    }
    this.#phase = 'close'
    return true
  }

  #header(name: 'transfer-encoding' | 'content-length' | 'connection' | 'keep-alive'): string | undefined {
    return this.#framing[name]
  }

  #finish(framed: boolean): void {
    const connection = (this.#header('connection') ?? '').toLowerCase()
    const keepAlive = framed && this.#buf.length === 0 &&
      (this.#minor >= 1 ? !/(^|,)\s*close\s*(,|$)/.test(connection) : /(^|,)\s*keep-alive\s*(,|$)/.test(connection))
    const hint = /timeout=(\d+)/i.exec(this.#header('keep-alive') ?? '')
    this.extra = this.#buf.length
    this.#response = {
      status: this.#status,
      reason: this.#reason,
      headers: this.#headers,
      body: this.#chunks.length === 1 ? new Uint8Array(this.#chunks[0]!) : new Uint8Array(Buffer.concat(this.#chunks)),
      keepAlive,
      keepAliveHint: hint !== null ? Number(hint[1]) : undefined,
    }
    this.#phase = 'done'
  }
}

/** What the request on a connection hears from its socket. */
export interface ConnectionHandler {
  data(d: Buffer): void
  error(err: NodeJS.ErrnoException): void
  end(): void
  close(): void
}

/**
 * A timer re-armed with Node's refresh() instead of made anew for each
 * request (a connection's request and idle timers run once per request).
 * Disarmed, it stays scheduled but unref'd, and firing does nothing.
 */
export class ReusableTimer {
  #timer: NodeJS.Timeout | undefined
  #ms = -1
  #fn: (() => void) | undefined

  /** Calls fn after ms unless disarmed first; `ref` keeps the process alive meanwhile. */
  arm(ms: number, fn: () => void, ref: boolean): void {
    this.#fn = fn
    if (this.#timer === undefined || this.#ms !== ms) {
      clearTimeout(this.#timer)
      this.#ms = ms
      this.#timer = setTimeout(() => {
        const f = this.#fn
        this.#fn = undefined
        f?.()
      }, ms)
    } else {
      this.#timer.refresh()
    }
    if (ref) this.#timer.ref()
    else this.#timer.unref()
  }

  disarm(): void {
    this.#fn = undefined
    this.#timer?.unref()
  }

  dispose(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#fn = undefined
  }
}

/**
 * A connection: its socket, when it was set up, and the request using it
 * (`handler`). The socket's listeners are added once; while the connection
 * is idle in a pool, anything from the server (data, end, error) drops it.
 */
export class PooledConnection {
  handler: ConnectionHandler | undefined
  /** The running request's request_timeout. */
  readonly requestTimer = new ReusableTimer()
  readonly idleTimer = new ReusableTimer()
  /** Set while pooled: takes the connection out of its pool and closes it. */
  drop: (() => void) | undefined

  /**
   * @param peer the peer as `ip:port`, taken at connect (the socket forgets it once closed)
   * @param id Dovecot's connection id (http-transport.ts streamName)
   */
  constructor(readonly socket: net.Socket, readonly connectedAt: number, readonly peer: string, readonly id: number) {
    socket.on('data', (d: Buffer) => (this.handler !== undefined ? this.handler.data(d) : this.drop?.()))
    socket.on('error', (err: NodeJS.ErrnoException) => (this.handler !== undefined ? this.handler.error(err) : this.drop?.()))
    socket.on('end', () => (this.handler !== undefined ? this.handler.end() : this.drop?.()))
    socket.on('close', () => {
      this.requestTimer.dispose()
      this.idleTimer.dispose()
      if (this.handler !== undefined) this.handler.close()
      else this.drop?.()
    })
  }
}

/** Idle keep-alive connections of one Lua state, per `host:port` (see http-transport.ts). */
export class ConnectionPool {
  readonly #idle = new Map<string, PooledConnection[]>()

  /** An idle connection to host:port still open, if any (taken out of the pool). */
  take(key: string): PooledConnection | undefined {
    const list = this.#idle.get(key)
    while (list !== undefined && list.length > 0) {
      const c = list.pop()!
      c.idleTimer.disarm()
      c.drop = undefined
      if (!c.socket.destroyed && c.socket.readyState === 'open') {
        c.socket.ref()
        return c
      }
      c.socket.destroy()
    }
    return undefined
  }

  /** Keeps a connection for reuse for `idleMs` (or the server's Keep-Alive hint, a second early). */
  put(key: string, c: PooledConnection, idleMs: number, hintSecs: number | undefined): void {
    c.handler = undefined
    c.drop = () => {
      const list = this.#idle.get(key)
      const i = list?.indexOf(c) ?? -1
      if (i >= 0) list!.splice(i, 1)
      c.idleTimer.dispose()
      c.drop = undefined
      c.socket.destroy()
    }
    const ms = hintSecs !== undefined && hintSecs * 1000 - 1000 > 0 ? Math.min(idleMs, hintSecs * 1000 - 1000) : idleMs
    c.idleTimer.arm(ms, c.drop, false)
    c.socket.unref()
    let list = this.#idle.get(key)
    if (list === undefined) this.#idle.set(key, (list = []))
    list.push(c)
  }
}
