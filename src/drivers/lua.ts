// The Lua driver (src/plugins/push-notification/push-notification-driver-lua.c).
//
// Per session: one Lua state; the main chunk, then script_init. Per
// transaction (spec §1.4): a raw _G check for dovecot_lua_notify_begin_txn
// (error if missing), then for event handlers (nothing is called if there are
// none), begin_txn(user) → ctx, the event functions at commit, end_txn(ctx,
// success), a full GC. Script errors are logged with Dovecot's text and the
// transaction goes on; an error in begin_txn skips the transaction. Dovecot
// itself crashes later in that case (spec §1.5); dovepush does not.

import { readFileSync } from 'node:fs'
import type { Driver, DriverFactory } from '../host/driver.js'
import { Host, type HostOptions } from '../host/host.js'
import { settingIsTrue } from '../config/settings.js'
import type { RunStats } from '../host/stats.js'
import { EVENT_NAMES, type EventName, eventFunctionName, isMessageEvent, type PushEvent, type Transaction } from '../events/types.js'
import type { CallOutcome } from '../lua/call.js'
import { createEventTables, type EventTables } from './event-table.js'
import type { MailUser } from '../lua/dovecot/user.js'
import { type LuaEngine, LuaType } from '../lua/engine.js'
import { createEnvironment, type EnvironmentOptions, type LuaEnvironment } from '../lua/environment.js'
import type { DovecotVersion } from '../lua/env.js'
import type { HttpTarget } from '../http/capture-sink.js'
import type { HttpRequestReport } from '../lua/dovecot/http.js'
import type { FullGc } from '../lua/stdlib/gc.js'

export const BEGIN_TXN = 'dovecot_lua_notify_begin_txn'
export const END_TXN = 'dovecot_lua_notify_end_txn'
const EVENT_FUNCTIONS = new Map<EventName, string>(EVENT_NAMES.map((n) => [n, eventFunctionName(n)]))
/** One bit per event kind: which kinds have a handler, as a number (no allocation per transaction). */
const EVENT_BIT = new Map<EventName, number>(EVENT_NAMES.map((n, i) => [n, 1 << i]))
const LUA_RIDX_GLOBALS = 2

/** One call into the script, as the testing kit and scenario expectations see it. */
export interface ScriptCall {
  /** `script_init`, `dovecot_lua_notify_begin_txn`, `dovecot_lua_notify_event_message_new`, … */
  readonly fn: string
  readonly user: string
  readonly session: string
  /** The event table given to an event function. */
  readonly event?: PushEvent
  /** end_txn's second argument. */
  readonly committed?: boolean
  /** Dovecot's error text when the call failed. */
  readonly error?: string
}

export interface LuaDriverOptions extends EnvironmentOptions {
  readonly stats: RunStats
  /** Told of every call into the script after it returns (off the hot path when unset). */
  readonly onCall?: (call: ScriptCall) => void
  readonly user?: string
  readonly sessionId?: string
  /** lua_settings of 2.4's script_init(settings); all values are strings. */
  readonly settings: Readonly<Record<string, string>>
}

type Step = void | Promise<void>
interface Begun {
  readonly txn: Transaction
  /** EVENT_BIT of the kinds with a handler. */
  readonly handlers: number
  readonly ctxRef: number
}
/** Applies f now, or when v settles: the per-event path stays synchronous unless the script waited. */
const then = <T, R>(v: T | Promise<T>, f: (v: T) => R | Promise<R>): R | Promise<R> => (v instanceof Promise ? v.then(f) : f(v))

/** Reads a script as luaL_loadfile does: a first line starting with '#' is skipped (its newline kept). */
export function readScript(path: string): Uint8Array {
  const bytes = readFileSync(path)
  if (bytes[0] !== 0x23 /* # */) return bytes
  const nl = bytes.indexOf(0x0a)
  return nl < 0 ? new Uint8Array(0) : bytes.subarray(nl)
}

export class LuaDriver implements Driver {
  readonly #options: LuaDriverOptions
  readonly #stats: RunStats
  #env: LuaEnvironment | undefined
  #eventTables: EventTables | undefined
  #ready = false
  /** Whether debug lines are wanted: Dovecot's e_debug texts, decided once (the per-event path builds none otherwise). */
  readonly #debug: boolean

  constructor(options: LuaDriverOptions) {
    this.#options = options
    this.#stats = options.stats
    this.#debug = options.log.isLevelEnabled('debug')
  }

  /** The Lua environment (for tests and the testing kit). */
  get environment(): LuaEnvironment | undefined {
    return this.#env
  }

  init(): boolean | Promise<boolean> {
    const o = this.#options
    let env: LuaEnvironment
    let chunk: Uint8Array
    try {
      chunk = readScript(o.scriptPath)
    } catch (err) {
      return this.#initFailed(`access(${o.scriptPath}) failed: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`)
    }
    if (this.#debug) o.log.debug(`lua: Loading ${o.scriptPath}`)
    env = createEnvironment(o)
    this.#env = env
    const { api, L } = env
    this.#eventTables = createEventTables(api, L)
    if (api.load(L, chunk, '@' + o.scriptPath, 'bt') !== 0) {
      const msg = api.tostring(L, -1) ?? '(null)'
      api.pop(L, 1)
      return this.#initFailed(`lua_load(${o.scriptPath}) failed: ${msg}`)
    }
    const chunkRef = api.ref(L)
    const ran = env.caller.call((T) => {
      api.pushref(T, chunkRef)
      return 0
    })
    return then(ran, (outcome) => {
      api.unref(L, chunkRef)
      this.#stats.call('(main chunk)')
      this.#report('(main chunk)', outcome)
      if (!outcome.ok) return this.#initFailed(`lua_pcall(${o.scriptPath}) failed: ${outcome.message}`, outcome)
      return this.#scriptInit(env)
    })
  }

  #scriptInit(env: LuaEnvironment): boolean | Promise<boolean> {
    const { api } = env
    const v23 = env.dovecot === '2.3'
    if (!this.#hasFunction(env, 'script_init')) return this.#initDone()
    if (this.#debug) this.#options.log.debug('lua: Calling script_init')
    const ran = env.caller.call((T) => {
      api.getglobal(T, 'script_init')
      if (v23) return 0
      api.createtable(T, 0, Object.keys(this.#options.settings).length)
      for (const [k, v] of Object.entries(this.#options.settings)) {
        api.pushstring(T, v)
        api.setfield(T, -2, k)
      }
      return 1
    })
    return then(ran, (outcome) => {
      this.#stats.call('script_init')
      this.#report('script_init', outcome)
      if (!outcome.ok) return this.#initFailed(`lua_pcall(script_init, ${v23 ? '0, 1' : '1, 0'}) failed: ${outcome.message}`, outcome)
      if (v23) {
        // dlua_script_init: lua_isinteger, 0 = ok (spec §1.3)
        const T = outcome.thread
        const isInt = outcome.nresults >= 1 && api.type(T, 1) === LuaType.NUMBER && api.isinteger(T, 1)
        if (!isInt) return this.#initFailed('script_init() returned non-number')
        if (api.tointeger(T, 1) !== 0) return this.#initFailed('Script init failed')
      }
      return this.#initDone()
    })
  }

  #initDone(): boolean {
    this.#ready = true
    return true
  }

  #initFailed(error: string, outcome?: CallOutcome): boolean {
    // push_notification_driver_init: i_error("%s: %s", driver_name, error)
    this.#options.log.error({ error_kind: outcome && !outcome.ok ? outcome.kind : 'init' }, `lua: ${error}`)
    this.#stats.errors.init++
    this.#ready = false
    return false
  }

  #report(fn: string, outcome: CallOutcome, extra: { event?: PushEvent; committed?: boolean } = {}): void {
    const on = this.#options.onCall
    if (on === undefined) return
    on({ fn, user: this.#options.user ?? '', session: this.#options.sessionId ?? '', ...extra, ...(outcome.ok ? {} : { error: outcome.message }) })
  }

  #hasFunction(env: LuaEnvironment, name: string): boolean {
    const { api, L } = env
    api.rawgeti(L, api.REGISTRYINDEX, LUA_RIDX_GLOBALS)
    const t = api.rawgetfield(L, -1, name)
    api.pop(L, 2)
    return t === LuaType.FUNCTION
  }

  transaction(txns: readonly Transaction[], user: MailUser): Step {
    const env = this.#env
    if (env === undefined || !this.#ready) return
    return this.#begin(env, txns, 0, user, [])
  }

  /** begin_txn for each transaction of the unit, in order (spec §1.4 steps 2-4). */
  #begin(env: LuaEnvironment, txns: readonly Transaction[], from: number, user: MailUser, begun: Begun[]): Step {
    const { api, L, caller } = env
    for (let i = from; i < txns.length; i++) {
      const txn = txns[i]!
      const handlers = this.#handlers(env, txn)
      if (handlers === undefined) continue
      if (this.#debug) this.#options.log.debug(`lua: Calling ${BEGIN_TXN}(${user.username})`)
      const ran = caller.call((T) => {
        api.getglobal(T, BEGIN_TXN)
        env.user.pushUser(T, user)
        return 1
      })
      const after = (outcome: CallOutcome): void => {
        this.#stats.call(BEGIN_TXN)
        this.#report(BEGIN_TXN, outcome)
        if (!outcome.ok) {
          // Dovecot skips the transaction (and later panics, spec §1.5); dovepush goes on
          this.#scriptError(outcome, BEGIN_TXN, 1, 1, {})
          return
        }
        if (this.#debug) this.#options.log.debug(`lua: Called ${BEGIN_TXN}`)
        // the first result (nil allowed) is the transaction context
        if (outcome.nresults >= 1) api.xmove(outcome.thread, L, 1)
        else api.pushnil(L)
        api.settop(outcome.thread, 0)
        begun.push({ txn, handlers, ctxRef: api.ref(L) })
      }
      if (ran instanceof Promise) {
        return ran.then((o) => {
          after(o)
          return this.#begin(env, txns, i + 1, user, begun)
        })
      }
      after(ran)
    }
    return this.#commit(env, begun, 0)
  }

  /**
   * The raw _G checks Dovecot makes at each begin: begin_txn must exist
   * (else an error), and at least one event function (else nothing is
   * called). Returns which events of the transaction have a handler
   * (EVENT_BIT), or undefined when nothing is to be called.
   */
  #handlers(env: LuaEnvironment, txn: Transaction): number | undefined {
    if (!this.#hasFunction(env, BEGIN_TXN)) {
      this.#options.log.error({ function_name: BEGIN_TXN }, `lua: Missing function ${BEGIN_TXN}`)
      this.#stats.errors.missing_function++
      return undefined
    }
    let checked = 0
    let handlers = 0
    for (const ev of txn.events) {
      const bit = EVENT_BIT.get(ev.name)!
      if ((checked & bit) !== 0) continue
      checked |= bit
      if (this.#hasFunction(env, EVENT_FUNCTIONS.get(ev.name)!)) handlers |= bit
    }
    let any = handlers !== 0
    for (const [name, fn] of EVENT_FUNCTIONS) {
      if (any) break
      if ((checked & EVENT_BIT.get(name)!) === 0) any = this.#hasFunction(env, fn)
    }
    if (!any) {
      this.#options.log.debug('lua: No event handlers found in script')
      return undefined
    }
    return handlers
  }

  /** Events (when committed) and end_txn for each begun transaction, in order. */
  #commit(env: LuaEnvironment, begun: readonly Begun[], from: number): Step {
    for (let i = from; i < begun.length; i++) {
      const b = begun[i]!
      const r = this.#events(env, b.txn.committed ? b.txn.events : [], 0, b.handlers, b.ctxRef, b.txn.committed)
      if (r instanceof Promise) return r.then(() => this.#commit(env, begun, i + 1))
    }
  }

  #events(env: LuaEnvironment, events: readonly PushEvent[], from: number, handlers: number, ctxRef: number, committed: boolean): Step {
    const { api, caller } = env
    for (let i = from; i < events.length; i++) {
      const ev = events[i]!
      this.#stats.events++
      if ((handlers & EVENT_BIT.get(ev.name)!) === 0) continue
      const fn = EVENT_FUNCTIONS.get(ev.name)!
      if (this.#debug) {
        // push_notification_driver_lua_call's e_debug texts
        const what = isMessageEvent(ev.name) ? `name=${ev.name},mailbox=${ev.mailbox},uid=${ev.uid ?? ''}` : `name=${ev.name},mailbox=${ev.mailbox}`
        this.#options.log.debug(`lua: Calling ${fn}(ctx, event[${what}])`)
      }
      const ran = caller.call((T) => {
        api.getglobal(T, fn)
        api.pushref(T, ctxRef)
        this.#eventTables!.push(T, ev)
        return 2
      })
      const after = (outcome: CallOutcome): void => {
        this.#stats.call(fn)
        this.#report(fn, outcome, { event: ev })
        if (!outcome.ok) {
          this.#scriptError(outcome, fn, 2, 0, { event_name: ev.name, mailbox: ev.mailbox, uid: ev.uid })
        } else if (this.#debug) {
          this.#options.log.debug(`lua: Called ${fn}`)
        }
      }
      if (ran instanceof Promise) {
        return ran.then((o) => {
          after(o)
          return this.#events(env, events, i + 1, handlers, ctxRef, committed)
        })
      }
      after(ran)
    }
    return this.#endTxn(env, ctxRef, committed)
  }

  #endTxn(env: LuaEnvironment, ctxRef: number, committed: boolean): Step {
    const { api, L, caller } = env
    if (!this.#hasFunction(env, END_TXN)) {
      this.#options.log.error({ function_name: END_TXN }, `lua: Missing function ${END_TXN}`)
      this.#stats.errors.missing_function++
      api.unref(L, ctxRef)
      return this.#collect(env)
    }
    if (this.#debug) this.#options.log.debug(`lua: Calling ${END_TXN}`)
    const ran = caller.call((T) => {
      api.getglobal(T, END_TXN)
      api.pushref(T, ctxRef)
      api.pushboolean(T, committed)
      return 2
    })
    return then(ran, (outcome) => {
      this.#stats.call(END_TXN)
      this.#report(END_TXN, outcome, { committed })
      if (!outcome.ok) this.#scriptError(outcome, END_TXN, 2, 0, {})
      else if (this.#debug) this.#options.log.debug(`lua: Called ${END_TXN}`)
      api.unref(L, ctxRef)
      return this.#collect(env)
    })
  }

  /**
   * The full collection Dovecot runs after each transaction (spec §1.4 step
   * 7), from the moment the script could see it (src/lua/stdlib/gc.ts).
   */
  #collect(env: LuaEnvironment): void {
    const { api, L } = env
    if (!env.gc.observable) {
      api.pushref(L, env.gcCheckRef)
      api.call(L, 0, 1)
      const grown = api.toboolean(L, -1)
      api.pop(L, 1)
      if (!grown) return
      env.gc.observe('a metatable reached through __index gained __gc or __mode')
    }
    api.pushref(L, env.gcRef)
    api.pushstring(L, 'collect')
    if (api.pcall(L, 1, 0, 0) !== 0) api.pop(L, 1)
  }

  #scriptError(outcome: CallOutcome & { ok: false }, fn: string, nargs: number, nresults: number, fields: Record<string, unknown>): void {
    this.#stats.errors[outcome.kind === 'error' ? 'script' : outcome.kind]++
    const error = `lua_pcall(${fn}, ${nargs}, ${nresults}) failed: ${outcome.message}`
    this.#options.log.error({ event: 'push_notification_lua_call_finished', function_name: fn, ...fields, error, error_kind: outcome.kind }, `lua: ${error}`)
  }

  deinit(): Step {
    const env = this.#env
    if (env === undefined) return
    const finish = (): void => {
      env.api.close()
      this.#env = undefined
    }
    if (!this.#ready || !this.#hasFunction(env, 'script_deinit')) return finish()
    const ran = env.caller.call((T) => {
      env.api.getglobal(T, 'script_deinit')
      return 0
    })
    return then(ran, (outcome) => {
      this.#stats.call('script_deinit')
      this.#report('script_deinit', outcome)
      if (!outcome.ok) {
        this.#stats.errors[outcome.kind === 'error' ? 'script' : outcome.kind]++
        this.#options.log.error(`lua: script_deinit() failed: lua_pcall(script_deinit, 0, 0) failed: ${outcome.message}`)
      }
      finish()
    })
  }
}


/**
 * Compiles the script once in a scratch state (nothing runs): a syntax error
 * comes back as Dovecot's `lua_load(<file>) failed: <file>:<line>: …` text.
 */
export function checkScriptSyntax(engine: LuaEngine, scriptPath: string): string | undefined {
  let chunk: Uint8Array
  try {
    chunk = readScript(scriptPath)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return `access(${scriptPath}) failed: ${code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`
  }
  const api = engine.newState()
  try {
    if (api.load(api.main, chunk, '@' + scriptPath, 'bt') !== 0) return `lua_load(${scriptPath}) failed: ${api.tostring(api.main, -1) ?? '(null)'}`
    return undefined
  } finally {
    api.close()
  }
}

/** What every session's Lua driver shares: the script and the engine settings. */
export interface LuaDriversOptions {
  readonly scriptPath: string
  readonly engine: LuaEngine
  readonly dovecot: DovecotVersion
  /** Per-call limit of Lua execution, ms; 0 = none. */
  readonly callTimeoutMs: number
  /** Memory cap per Lua state, bytes; 0 = none. */
  readonly memoryLimit: number
  /** When the full GC after each transaction runs (src/lua/stdlib/gc.ts); default 'observable'. */
  readonly fullGc?: FullGc
  readonly packagePath?: string
  /** `--http capture`: where script HTTP connections go. */
  readonly httpTarget?: HttpTarget
  /** Told of every call into the script (scenarios, the testing kit). */
  readonly onCall?: (call: ScriptCall) => void
  /** Told of every finished dovecot.http request a script made (`dovepush serve`); nothing is timed when unset. */
  readonly onHttpRequest?: (request: ScriptHttpRequest) => void
}

/** A dovecot.http request a script made, with its session. */
export interface ScriptHttpRequest extends HttpRequestReport {
  readonly user: string
  readonly session: string
}

/** `push_notification_driver = lua:file=<script>`: one Lua driver per session. */
export function luaDrivers(o: LuaDriversOptions): DriverFactory {
  return (ctx) => [
    new LuaDriver({
      engine: o.engine,
      scriptPath: o.scriptPath,
      dovecot: o.dovecot,
      log: ctx.log,
      debug: settingIsTrue(ctx.settings.mail_debug),
      callTimeoutMs: o.callTimeoutMs,
      memoryLimit: o.memoryLimit,
      ...(o.fullGc !== undefined ? { fullGc: o.fullGc } : {}),
      stats: ctx.stats,
      settings: ctx.settings,
      ...(o.packagePath !== undefined ? { packagePath: o.packagePath } : {}),
      ...(o.httpTarget !== undefined ? { httpTarget: o.httpTarget } : {}),
      ...(o.onCall !== undefined ? { onCall: o.onCall, user: ctx.user, sessionId: ctx.sessionId } : {}),
      ...(o.onHttpRequest !== undefined ? { onHttpRequest: sessionHttpObserver(o.onHttpRequest, ctx.user, ctx.sessionId) } : {}),
    }),
  ]
}

function sessionHttpObserver(on: (r: ScriptHttpRequest) => void, user: string, session: string): (r: HttpRequestReport) => void {
  return (r) => on({ user, session, ...r })
}

/** A Host whose sessions run one Lua script: what `dovepush run` uses. */
export function createLuaHost(o: LuaDriversOptions & Omit<HostOptions, 'drivers'>): Host {
  return new Host({
    drivers: luaDrivers(o),
    settings: o.settings,
    log: o.log,
    defaultService: o.defaultService,
    maxSessions: o.maxSessions,
    ...(o.idleSessionMs !== undefined ? { idleSessionMs: o.idleSessionMs } : {}),
    ...(o.store !== undefined ? { store: o.store } : {}),
    ...(o.settingsFor !== undefined ? { settingsFor: o.settingsFor } : {}),
  })
}

