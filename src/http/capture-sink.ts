// The built-in HTTP sink of `dovepush run --http capture`: every request a
// script makes (dovecot.http, socket.http) is connected here instead of to
// its real host, recorded, and answered `200 OK` with an empty body, so a
// script can be tried without an endpoint. The record keeps the URL the
// script asked for (from the Host header and the request target).

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Dispatcher } from 'undici'
import { Agent, buildConnector } from 'undici'

export interface CapturedRequest {
  readonly method: string
  /** The URL the script asked for (http://<Host><path>). */
  readonly url: string
  /** Header names and values as received, in order; Authorization values redacted unless `redact: false`. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body: string
  readonly body_len: number
}

/** Where script connections go instead of their real host. */
export interface HttpTarget {
  readonly host: string
  readonly port: number
}

export interface CaptureSinkOptions {
  /** Replace Authorization values with "(redacted)" (default true: the CLI prints and logs them; the testing kit asserts on them). */
  readonly redact?: boolean
}

export class CaptureSink {
  readonly requests: CapturedRequest[] = []
  readonly #server: Server
  #port = 0

  constructor(options: CaptureSinkOptions = {}) {
    const redact = options.redact ?? true
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = Buffer.concat(chunks)
        const headers: Array<[string, string]> = []
        for (let i = 0; i < req.rawHeaders.length; i += 2) {
          const name = req.rawHeaders[i]!
          // secrets never reach a log: credentials are redacted
          headers.push([name, redact && /^(authorization|proxy-authorization)$/i.test(name) ? '(redacted)' : req.rawHeaders[i + 1]!])
        }
        this.requests.push({ method: req.method ?? '', url: `http://${req.headers.host ?? ''}${req.url ?? ''}`, headers, body: body.toString('utf8'), body_len: body.length })
        res.writeHead(200, 'OK', { 'Content-Length': '0' })
        res.end()
      })
    })
  }

  async start(): Promise<HttpTarget> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.#port = (this.#server.address() as AddressInfo).port
    return this.target
  }

  get target(): HttpTarget {
    return { host: '127.0.0.1', port: this.#port }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/**
 * An undici connector that sends every connection to `target`: the request
 * itself (Host header, path) is unchanged. https requests are sent in plain
 * text to the sink.
 */
export function redirectConnect(target: HttpTarget, timeout: number): buildConnector.connector {
  const connect = buildConnector({ timeout })
  return (opts, callback) => connect({ ...opts, protocol: 'http:', hostname: target.host, host: `${target.host}:${target.port}`, port: String(target.port), servername: undefined }, callback)
}

/** An Agent for one-off requests to `target` (socket.http in capture mode). */
export function captureAgent(target: HttpTarget): Dispatcher {
  return new Agent({ connect: redirectConnect(target, 10_000) })
}
