// `dovepush serve SCRIPT`: run a script as an HTTP service (src/serve/).
// Flags are validated once here; SIGTERM/SIGINT drain the queue, end the
// sessions (script_deinit) and exit 0; a second signal exits at once (130).
// Exit codes: 0 stopped by a signal, 1 the script does not load or the
// address cannot be listened on, 2 bad usage.
//
// This module is loaded for `dovepush --help` (its flag table): everything
// heavy is imported when the command runs.

import { readFileSync, statSync } from 'node:fs'
import type { Logger } from 'pino'
import { InvalidArgumentError, isDovepushError } from '../errors.js'
import type { LogFormat, LogLevel } from '../log/logger.js'
import type { ServeOptions } from '../serve/server.js'
import { SERVE_FLAGS } from './run-flags.js'


export interface ServeCliOptions {
  readonly serve: Omit<ServeOptions, 'log'> & { readonly host: string; readonly port: number }
  readonly logFormat: LogFormat
  readonly logLevel: LogLevel
}

/** `HOST:PORT`, `[IPv6]:PORT`, or `PORT` (on 127.0.0.1). */
export function parseListen(value: string): { host: string; port: number } {
  let m: RegExpExecArray | null
  let host: string
  let port: string
  if ((m = /^\[([^\]\s]+)\]:(\d+)$/.exec(value)) !== null) [host, port] = [m[1]!, m[2]!]
  else if ((m = /^(\d+)$/.exec(value)) !== null) [host, port] = ['127.0.0.1', m[1]!]
  else if ((m = /^([^:\s[\]]+):(\d+)$/.exec(value)) !== null) [host, port] = [m[1]!, m[2]!]
  else throw new InvalidArgumentError(`--listen: expected HOST:PORT (127.0.0.1:8025, [::1]:8025, 0.0.0.0:8025), got "${value}"`)
  const n = Number(port)
  if (n > 65535) throw new InvalidArgumentError(`--listen: port ${port} out of range (0-65535)`)
  return { host, port: n }
}

/** `1048576`, `512k`, `4m` (KiB, MiB). */
export function parseSize(flag: string, value: unknown): number {
  const m = /^(\d+)\s*(k|m|kb|mb|kib|mib)?$/i.exec(String(value).trim())
  const n = m === null ? NaN : Number(m[1]) * (m[2] === undefined ? 1 : m[2].toLowerCase().startsWith('k') ? 1024 : 1024 * 1024)
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag}: expected a size in bytes (e.g. 1048576, 512k, 4m), got "${String(value)}"`)
  return n
}

function positiveInt(flag: string, value: unknown): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag}: expected a positive integer, got "${String(value)}"`)
  return n
}

function nonNegativeSeconds(flag: string, value: unknown): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0 || n * 1000 > 0x7fffffff) throw new InvalidArgumentError(`${flag}: expected seconds, 0 to 2147483 (0 = never), got "${String(value)}"`)
  return n
}

/** The token: the first line of the file, read once. */
export function readTokenFile(path: string): { token: string; warning?: string } {
  let text: string
  let mode: number
  try {
    text = readFileSync(path, 'utf8')
    mode = statSync(path).mode
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new InvalidArgumentError(`--token-file ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  const token = (text.split(/\r?\n/, 1)[0] ?? '').trim()
  if (token === '') throw new InvalidArgumentError(`--token-file ${path}: empty first line (the token goes there)`)
  if (/\s/.test(token)) throw new InvalidArgumentError(`--token-file ${path}: the token contains white space`)
  return (mode & 0o077) !== 0 ? { token, warning: `--token-file ${path}: readable by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it` } : { token }
}

/** Validates the CLI flags once, at the boundary (warnings go to `warn`). */
export async function normalizeServeOptions(script: string, flags: Record<string, unknown>, warn: (s: string) => void = () => {}): Promise<ServeCliOptions> {
  const { normalizeRunOptions } = await import('./run.js')
  const base = normalizeRunOptions(script, flags)
  const { host, port } = parseListen(String(flags.listen ?? SERVE_FLAGS.listen.default))
  let token: string | undefined
  if (flags.tokenFile !== undefined) {
    if (flags.insecureNoAuth === true) throw new InvalidArgumentError('--token-file and --insecure-no-auth: give one')
    const t = readTokenFile(String(flags.tokenFile))
    if (t.warning !== undefined) warn(t.warning)
    token = t.token
  }
  const { isLoopback } = await import('../serve/server.js')
  if (!isLoopback(host) && token === undefined && flags.insecureNoAuth !== true) {
    throw new InvalidArgumentError(`--listen ${String(flags.listen)}: not a loopback address, so anyone who reaches it could run transactions: give --token-file, or --insecure-no-auth to serve without authentication`)
  }
  return {
    serve: {
      script,
      settings: base.settings,
      user: base.user,
      service: base.service,
      engine: base.engine,
      dovecot: base.dovecot,
      callTimeoutMs: base.callTimeoutMs,
      memoryLimit: base.memoryLimit,
      fullGc: base.fullGc,
      http: base.http,
      host,
      port,
      ...(token !== undefined ? { token } : {}),
      insecureNoAuth: flags.insecureNoAuth === true,
      concurrency: positiveInt('--concurrency', flags.concurrency ?? SERVE_FLAGS.concurrency.default),
      queueSize: positiveInt('--queue-size', flags.queueSize ?? SERVE_FLAGS.queueSize.default),
      maxBody: parseSize('--max-body', flags.maxBody ?? SERVE_FLAGS.maxBody.default),
      sessionIdleSeconds: nonNegativeSeconds('--session-idle', flags.sessionIdle ?? SERVE_FLAGS.sessionIdle.default),
    },
    logFormat: base.logFormat,
    logLevel: base.logLevel,
  }
}

export interface ServeCommandIo {
  /** Where SIGTERM/SIGINT come from (default: process). */
  readonly signals?: NodeJS.EventEmitter
  readonly stderr?: { write(s: string): unknown }
  /** Replaces the logger made from --log-format/--log-level. */
  readonly log?: Logger
  /** Told the URL once the server listens. */
  readonly onListening?: (url: string) => void
}

export async function serveCommand(script: string, flags: Record<string, unknown>, io: ServeCommandIo = {}): Promise<number> {
  const stderr = io.stderr ?? process.stderr
  const o = await normalizeServeOptions(script, flags, (w) => stderr.write(`dovepush: warning: ${w}\n`))
  const [{ startServe, ListenError }, { createLogger }, { formatSummary }] = await Promise.all([import('../serve/server.js'), import('../log/logger.js'), import('./summary.js')])
  const log = io.log ?? createLogger({ format: o.logFormat, level: o.logLevel })
  const flush = (): Promise<void> => new Promise((resolve) => log.flush(() => resolve()))
  let handle: Awaited<ReturnType<typeof startServe>>
  try {
    handle = await startServe({ ...o.serve, log })
  } catch (err) {
    if (err instanceof ListenError || (isDovepushError(err) && err.code === 'DOVEPUSH_ERR_SCRIPT_LOAD')) {
      stderr.write(`dovepush: ${isDovepushError(err) ? `${err.code}: ` : ''}${(err as Error).message}\n`)
      await flush()
      return 1
    }
    throw err
  }
  const started = performance.now()
  stderr.write(`dovepush: serving ${script} on ${handle.url} (POST /v1/transactions, GET /healthz, GET /metrics)${o.serve.token !== undefined ? ', bearer token required' : ''}\n`)
  io.onListening?.(handle.url)

  const signals = io.signals ?? process
  const signal = await new Promise<string>((resolve) => {
    const term = (): void => done('SIGTERM')
    const int = (): void => done('SIGINT')
    const done = (name: string): void => {
      signals.off('SIGTERM', term)
      signals.off('SIGINT', int)
      resolve(name)
    }
    signals.on('SIGTERM', term)
    signals.on('SIGINT', int)
  })
  stderr.write(`dovepush: ${signal}: draining ${handle.queue.depth} queued transactions, then ending the sessions (again to exit at once)\n`)
  const force = (): void => {
    stderr.write('dovepush: exiting without draining\n')
    process.exit(130)
  }
  signals.once('SIGTERM', force)
  signals.once('SIGINT', force)
  try {
    await handle.close()
  } finally {
    signals.off('SIGTERM', force)
    signals.off('SIGINT', force)
  }
  await flush()
  const c = handle.counts
  stderr.write(formatSummary(handle.host.stats, { seconds: (performance.now() - started) / 1000, badLines: [], badLineCount: 0, strictStop: undefined }))
  stderr.write(`serve: ${c.accepted.toLocaleString('en-US')} accepted, ${c.rejected.toLocaleString('en-US')} refused (503/413), ${c.badRequests.toLocaleString('en-US')} bad requests (4xx)\n`)
  return 0
}
