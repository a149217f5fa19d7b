// `dovepush run SCRIPT`: replay NDJSON transactions through a script.
// Exit codes: 0 ok, 1 the script failed to load or init, 2 bad usage or input.

import { createReadStream, statSync, writeFileSync } from 'node:fs'
import { CaptureSink } from '../http/capture-sink.js'
import type { Readable } from 'node:stream'
import { loadSettingsFile, parseSetting, type Settings } from '../config/settings.js'
import { InputError, InvalidArgumentError, ScriptLoadError } from '../errors.js'
import { readTransactionBatches } from '../events/ndjson-reader.js'
import { checkScriptSyntax, createLuaHost } from '../drivers/lua.js'
import { createEngine, ENGINE_NAMES, type EngineName } from '../lua/engine.js'
import { DOVECOT_VERSIONS, type DovecotVersion } from '../lua/env.js'
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../log/logger.js'
import { Progress } from './progress.js'
import { formatSummary } from './summary.js'
import { FULL_GC_MODES, type FullGc } from '../lua/stdlib/gc.js'

export interface RunOptions {
  readonly script: string
  readonly events: string
  readonly settings: Settings
  readonly user: string
  readonly service: string
  readonly engine: EngineName
  readonly dovecot: DovecotVersion
  readonly callTimeoutMs: number
  readonly memoryLimit: number
  readonly fullGc: FullGc
  readonly strict: boolean
  readonly logFormat: LogFormat
  readonly logLevel: LogLevel
  readonly progress: boolean
  readonly http: 'real' | 'capture'
  readonly httpLog: string | undefined
}

function oneOf<T extends string>(flag: string, value: unknown, allowed: readonly T[]): T {
  const v = String(value)
  if (!(allowed as readonly string[]).includes(v)) throw new InvalidArgumentError(`${flag}: expected one of ${allowed.join(', ')}, got "${v}"`)
  return v as T
}

function nonNegative(flag: string, value: unknown): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag}: expected a non-negative number, got "${String(value)}"`)
  return n
}

/** Validates the CLI flags once, at the boundary. */
export function normalizeRunOptions(script: string, flags: Record<string, unknown>): RunOptions {
  const settings: Record<string, string> = {}
  if (flags.settings !== undefined) Object.assign(settings, loadSettingsFile(String(flags.settings)))
  const sets = flags.set === undefined ? [] : Array.isArray(flags.set) ? flags.set : [flags.set]
  for (const s of sets) {
    const [k, v] = parseSetting(String(s))
    settings[k] = v
  }
  return {
    script,
    events: flags.events === undefined ? '-' : String(flags.events),
    settings,
    user: String(flags.user ?? 'user@example.test'),
    service: String(flags.service ?? 'imap'),
    engine: oneOf('--engine', flags.engine ?? 'wasmoon', ENGINE_NAMES),
    dovecot: oneOf('--dovecot', flags.dovecot ?? '2.3', DOVECOT_VERSIONS),
    callTimeoutMs: nonNegative('--call-timeout', flags.callTimeout ?? 5000),
    memoryLimit: nonNegative('--memory-limit', flags.memoryLimit ?? 256) * 1024 * 1024,
    fullGc: oneOf('--full-gc', flags.fullGc ?? 'observable', FULL_GC_MODES),
    strict: flags.strict === true,
    logFormat: oneOf('--log-format', flags.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json'), LOG_FORMATS),
    logLevel: oneOf('--log-level', flags.logLevel ?? 'info', LOG_LEVELS),
    progress: flags.progress === true || (flags.progress === undefined && process.stderr.isTTY === true),
    http: oneOf('--http', flags.http ?? 'real', ['real', 'capture'] as const),
    httpLog: httpLogFlag(flags),
  }
}

function httpLogFlag(flags: Record<string, unknown>): string | undefined {
  if (flags.httpLog === undefined) return undefined
  if (flags.http !== 'capture') throw new InvalidArgumentError('--http-log: needs --http capture (real requests are not recorded)')
  return String(flags.httpLog)
}

export async function runCommand(script: string, flags: Record<string, unknown>): Promise<number> {
  if (flags.scenario !== undefined) {
    // one scenario file with this script instead of NDJSON transactions (src/cli/test.ts)
    if (flags.events !== undefined) throw new InvalidArgumentError('--scenario and --events: give one (a scenario makes its own transactions)')
    const { scenarioRunCommand } = await import('./test.js')
    return scenarioRunCommand(script, String(flags.scenario), flags)
  }
  return run(normalizeRunOptions(script, flags))
}

export async function run(o: RunOptions): Promise<number> {
  const engine = await createEngine(o.engine)
  const syntax = checkScriptSyntax(engine, o.script)
  if (syntax !== undefined) {
    process.stderr.write(`dovepush: ${new ScriptLoadError(syntax).code}: ${syntax}\n`)
    return 1
  }
  let input: Readable
  let size = 0
  if (o.events === '-') input = process.stdin
  else {
    try {
      size = statSync(o.events).size
    } catch (err) {
      throw new InvalidArgumentError(`--events ${o.events}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
    }
    input = createReadStream(o.events)
  }
  const log = createLogger({ format: o.logFormat, level: o.logLevel })
  const sink = o.http === 'capture' ? new CaptureSink() : undefined
  const httpTarget = sink !== undefined ? await sink.start() : undefined
  const host = createLuaHost({
    ...(httpTarget !== undefined ? { httpTarget } : {}),
    scriptPath: o.script,
    engine,
    dovecot: o.dovecot,
    settings: o.settings,
    log,
    callTimeoutMs: o.callTimeoutMs,
    memoryLimit: o.memoryLimit,
    fullGc: o.fullGc,
    defaultService: o.service,
    maxSessions: 1000,
  })
  const started = performance.now()
  const progress = o.progress ? new Progress(process.stderr, host.stats, size, () => bytesRead(input)) : undefined
  const badLines: InputError[] = []
  let badLineCount = 0
  const inFlight = new Set<Promise<void>>()
  let stoppedAt: InputError | undefined
  read: for await (const batch of readTransactionBatches(input, { user: o.user })) {
    for (const item of batch) {
      if (item.error !== undefined) {
        badLineCount++
        if (badLines.length < 5) badLines.push(item.error)
        log.error({ line: item.line, field: item.error.field, code: item.error.code }, `input: ${item.error.message}`)
        if (o.strict) {
          stoppedAt = item.error
          break read
        }
        continue
      }
      const r = host.submit(item.txn)
      if (r instanceof Promise) {
        const p = r.finally(() => inFlight.delete(p))
        inFlight.add(p)
        if (inFlight.size >= 64) await Promise.race(inFlight)
      }
    }
    progress?.tick()
  }
  if (stoppedAt !== undefined && 'destroy' in input) input.destroy()
  await Promise.all(inFlight)
  await host.close()
  await sink?.close()
  progress?.done()
  if (sink !== undefined && o.httpLog !== undefined) writeFileSync(o.httpLog, sink.requests.map((r) => JSON.stringify(r) + '\n').join(''))
  await new Promise<void>((resolve) => log.flush(() => resolve()))
  process.stderr.write(formatSummary(host.stats, { seconds: (performance.now() - started) / 1000, badLines, badLineCount, strictStop: stoppedAt, captured: sink?.requests }))
  if (host.stats.errors.init > 0) return 1
  return badLineCount > 0 ? 2 : 0
}

function bytesRead(input: Readable): number {
  return (input as Readable & { bytesRead?: number }).bytesRead ?? 0
}
