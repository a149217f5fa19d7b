// dovepush/testing: integration tests of a push script in vitest (or any
// runner). A TestHost runs one script the way `dovepush run` does (real Lua,
// real HTTP), over a simulated mail store; the test performs mail actions
// (deliver, append, store, …), which produce exactly the transactions Dovecot
// 2.3.19 would, and then reads what the script did: the HTTP requests a
// built-in local sink received, the calls made into the script, and its log
// lines.
//
//   const t = await createTestHost({ script: 'push.lua', settings: { push_lua_url: '{{sink}}/hook' } })
//   await t.deliver({ to: 'alice@example.test', message: { from: 'Bob <bob@example.test>', subject: 'Hi', body: 'Hello' } })
//   expect(t.requests[0]?.json()).toMatchObject({ subject: 'Hi' })
//   await t.close()

import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { settingIsTrue, type Settings } from '../config/settings.js'
import { checkScriptSyntax, createLuaHost, type ScriptCall } from '../drivers/lua.js'
import { ScriptLoadError } from '../errors.js'
import type { Host } from '../host/host.js'
import { CaptureSink } from '../http/capture-sink.js'
import { createEngine, type EngineName } from '../lua/engine.js'
import type { DovecotVersion } from '../lua/env.js'
import { createLogger, type LogLevel } from '../log/logger.js'
import { type ActionResult, type Actor, type AppendItem, type DeliverOptions, MailSimulator, type StoreOp, type UidSet } from '../mailstore/actions.js'
import { MailStore } from '../mailstore/store.js'

export type { ScriptCall } from '../drivers/lua.js'
export type { ActionResult, Actor, AppendItem, DeliverOptions, MessageInput, StoreOp, UidSet } from '../mailstore/actions.js'
export type { SimpleMessage, MessageFields } from '../mailstore/message.js'
export { MailStore } from '../mailstore/store.js'
export { loadScenario, type Scenario } from '../sources/scenario.js'
export { runScenario, type ScenarioResult, type RunScenarioOptions } from './run-scenario.js'
export {
  checkExpectations,
  formatMismatches,
  matchCalls,
  matchLogs,
  matchNoErrors,
  matchRequests,
  subsetDiff,
  type CallExpectation,
  type Expectations,
  type LogExpectation,
  type Mismatch,
  type RequestExpectation,
} from './expect.js'

export interface TestHostOptions {
  /** The Lua script (path). */
  readonly script: string
  /** plugin {} settings for every user; `{{sink}}` in a value becomes the sink's base URL (http://127.0.0.1:PORT). */
  readonly settings?: Readonly<Record<string, string>>
  /** Per-user settings, merged over `settings`. */
  readonly users?: Readonly<Record<string, Readonly<Record<string, string>>>>
  readonly engine?: EngineName
  readonly dovecot?: DovecotVersion
  /** Per-call Lua limit, ms (default 5000). */
  readonly callTimeoutMs?: number
  /** Lowest level kept in `logs` (default debug when mail_debug is set, else info). */
  readonly logLevel?: LogLevel
  /** Also print log lines to stderr (default false). */
  readonly echoLogs?: boolean
  /** Unix seconds "now" for the store (UIDVALIDITY, save times); default the real clock. */
  readonly now?: () => number
}

/** An HTTP request the sink received. */
export interface SinkRequest {
  readonly method: string
  /** Full URL as the script asked for it (http://127.0.0.1:PORT/path?query). */
  readonly url: string
  /** Path and query. */
  readonly path: string
  /** Header names and values as received, in order (Authorization included: tests may check it). */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body: string
  /** A header's value (case-insensitive), undefined when absent. */
  header(name: string): string | undefined
  /** The body parsed as JSON (throws when it is not JSON). */
  json(): unknown
}

/** A log line of the script's sessions (pino's JSON object). */
export interface LogLine {
  readonly level: number
  readonly msg: string
  readonly user?: string
  readonly session?: string
  readonly service?: string
  readonly [key: string]: unknown
}

const LEVEL_NAMES: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }

export class TestHost {
  /** Requests the sink received, in order. */
  readonly requests: SinkRequest[] = []
  /** Calls into the script, in order. */
  readonly calls: ScriptCall[]
  /** The sessions' log lines, in order. */
  readonly logs: LogLine[]
  /** The sink's base URL, e.g. http://127.0.0.1:39123. */
  readonly sinkUrl: string
  readonly store: MailStore
  readonly host: Host
  readonly log: Logger
  readonly #sim: MailSimulator
  readonly #sink: CaptureSink
  #seen = 0

  /** Use createTestHost. */
  constructor(parts: { host: Host; store: MailStore; sink: CaptureSink; sinkUrl: string; log: Logger; calls: ScriptCall[]; logs: LogLine[] }) {
    this.host = parts.host
    this.store = parts.store
    this.#sink = parts.sink
    this.sinkUrl = parts.sinkUrl
    this.log = parts.log
    this.calls = parts.calls
    this.logs = parts.logs
    this.#sim = new MailSimulator(parts.host)
  }

  /** LMTP delivery to one or more recipients. */
  deliver(o: DeliverOptions): Promise<ActionResult> {
    return this.#act(() => this.#sim.deliver(o))
  }
  /** IMAP LOGIN: starts the session (the script's main chunk and script_init) with no transaction. */
  login(a: Actor): Promise<ActionResult> {
    return this.#act(() => this.#sim.login(a))
  }
  select(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.select(a))
  }
  append(a: Actor & { mailbox: string; items: readonly AppendItem[] }): Promise<ActionResult> {
    return this.#act(() => this.#sim.append(a))
  }
  /** IMAP STORE with op `+`, `-` or `=` (flags and keywords together). */
  storeFlags(a: Actor & { mailbox: string; uids?: UidSet; op: StoreOp; flags: readonly string[] }): Promise<ActionResult> {
    return this.#act(() => this.#sim.store(a))
  }
  /** IMAP STORE +FLAGS. */
  addFlags(a: Actor & { mailbox: string; uids?: UidSet; flags: readonly string[] }): Promise<ActionResult> {
    return this.storeFlags({ ...a, op: '+' })
  }
  /** IMAP STORE -FLAGS. */
  removeFlags(a: Actor & { mailbox: string; uids?: UidSet; flags: readonly string[] }): Promise<ActionResult> {
    return this.storeFlags({ ...a, op: '-' })
  }
  /** IMAP STORE FLAGS (replace). */
  setFlags(a: Actor & { mailbox: string; uids?: UidSet; flags: readonly string[] }): Promise<ActionResult> {
    return this.storeFlags({ ...a, op: '=' })
  }
  expunge(a: Actor & { mailbox: string; uids?: UidSet }): Promise<ActionResult> {
    return this.#act(() => this.#sim.expunge(a))
  }
  copy(a: Actor & { mailbox: string; uids?: UidSet; to: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.copy(a))
  }
  move(a: Actor & { mailbox: string; uids?: UidSet; to: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.move(a))
  }
  create(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.create(a))
  }
  rename(a: Actor & { mailbox: string; to: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.rename(a))
  }
  delete(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.delete(a))
  }
  subscribe(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.subscribe(a))
  }
  unsubscribe(a: Actor & { mailbox: string }): Promise<ActionResult> {
    return this.#act(() => this.#sim.unsubscribe(a))
  }
  /** IMAP LOGOUT: ends the session (script_deinit). */
  async logout(a: Actor): Promise<void> {
    await this.#sim.logout(a)
    this.#collect()
  }

  /** The simulator itself (the actions without the bookkeeping). */
  get simulator(): MailSimulator {
    return this.#sim
  }

  /** Requests received since the previous call of `newRequests()` (or since the start). */
  newRequests(): SinkRequest[] {
    const out = this.requests.slice(this.#seen)
    this.#seen = this.requests.length
    return out
  }

  /** Log lines at `level` or above (default error). */
  logsAt(level: LogLevel = 'error'): LogLine[] {
    const min = Number(Object.entries(LEVEL_NAMES).find(([, n]) => n === level)?.[0] ?? 50)
    return this.logs.filter((l) => l.level >= min)
  }

  /** Ends every session (script_deinit), stops the sink. */
  async close(): Promise<void> {
    await this.#sim.close()
    await this.host.close()
    this.#collect()
    await this.#sink.close()
  }

  async #act(fn: () => Promise<ActionResult>): Promise<ActionResult> {
    const r = await fn()
    this.#collect()
    return r
  }

  /** Copies the sink's new requests into `requests` (the script has finished with them: submit awaited the calls). */
  #collect(): void {
    const got = this.#sink.requests
    for (let i = this.requests.length; i < got.length; i++) this.requests.push(sinkRequest(got[i]!))
  }
}

function sinkRequest(r: { method: string; url: string; headers: ReadonlyArray<readonly [string, string]>; body: string }): SinkRequest {
  const u = new URL(r.url)
  return {
    method: r.method,
    url: r.url,
    path: u.pathname + u.search,
    headers: r.headers,
    body: r.body,
    header: (name) => r.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1],
    json: () => JSON.parse(r.body) as unknown,
  }
}

/** `{{sink}}` → the sink's base URL in every value. */
export function expandSink(settings: Readonly<Record<string, string>>, sinkUrl: string): Settings {
  return Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, v.replaceAll('{{sink}}', sinkUrl)]))
}

/** Starts a TestHost: the sink listens on 127.0.0.1; throws ScriptLoadError when the script does not compile. */
export async function createTestHost(o: TestHostOptions): Promise<TestHost> {
  const script = resolve(o.script)
  const engine = await createEngine(o.engine ?? 'wasmoon')
  const syntax = checkScriptSyntax(engine, script)
  if (syntax !== undefined) throw new ScriptLoadError(syntax)
  const sink = new CaptureSink({ redact: false })
  const target = await sink.start()
  const sinkUrl = `http://${target.host}:${target.port}`
  const base = expandSink(o.settings ?? {}, sinkUrl)
  const perUser = new Map(Object.entries(o.users ?? {}).map(([u, s]) => [u, { ...base, ...expandSink(s, sinkUrl) }]))
  const logs: LogLine[] = []
  const calls: ScriptCall[] = []
  const level = o.logLevel ?? (settingIsTrue(base.mail_debug) || [...perUser.values()].some((s) => settingIsTrue(s.mail_debug)) ? 'debug' : 'info')
  const log = createLogger({
    format: 'json',
    level,
    destination: {
      write: (s: string) => {
        const line = JSON.parse(s) as LogLine
        logs.push(line)
        if (o.echoLogs === true) process.stderr.write(`${LEVEL_NAMES[line.level] ?? line.level}: ${line.service ?? ''}(${line.user ?? ''}): ${line.msg}\n`)
      },
    },
  })
  const store = new MailStore(o.now !== undefined ? { now: o.now } : {})
  const host = createLuaHost({
    scriptPath: script,
    engine,
    dovecot: o.dovecot ?? '2.3',
    settings: base,
    settingsFor: (user) => perUser.get(user) ?? base,
    log,
    callTimeoutMs: o.callTimeoutMs ?? 5000,
    memoryLimit: 256 * 1024 * 1024,
    defaultService: 'imap',
    maxSessions: 1000,
    store,
    onCall: (c) => calls.push(c),
  })
  return new TestHost({ host, store, sink, sinkUrl, log, calls, logs })
}
