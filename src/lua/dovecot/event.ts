// dovecot.event: event objects (src/lib-lua/dlua-dovecot.c, spec §6).
//
// An event is a table with a private `item` and the metatable
// "struct event" (`__index` = itself) holding the methods; every method but
// passthrough_event returns the object itself, so calls chain. Each method
// checks its exact argument count. Log lines carry the prefixes of the event
// chain: the script's own event appends "lua: " (push-notification-driver-lua.c),
// so `dovecot.event():log_info("x")` logs "lua: x".

import { type LuaThread, LuaType } from '../engine.js'
import { type LuaEnv, type LuaMethods, pushMethodTable } from '../env.js'
import { LuaObjects } from '../objects.js'
import { checkInteger, checkObject, checkString, dluaError, requireArgs, requireArgsIn } from './args.js'

const EVENT = 'struct event'
const PASSTHROUGH = 'struct event_passthrough'

/** The JS side of one Dovecot event. */
export interface EventState {
  readonly parent: EventState | undefined
  name: string | undefined
  prefix: string
  /** event_replace_log_prefix: the parents' prefixes are no longer shown. */
  replacesPrefix: boolean
  alwaysLogSource: boolean
  readonly fields: Record<string, string | number>
  /** For a passthrough: the event it sends from. */
  readonly passthroughOf?: EventState
}

type Level = 'debug' | 'info' | 'warn' | 'error'

/** The full log prefix of an event: its ancestors' prefixes first. */
export function eventPrefix(ev: EventState | undefined): string {
  let out = ''
  for (let e = ev; e !== undefined; e = e.parent) {
    out = e.prefix + out
    if (e.replacesPrefix) break
  }
  return out
}

function collectFields(ev: EventState): Record<string, string | number> {
  const chain: EventState[] = []
  for (let e: EventState | undefined = ev; e !== undefined; e = e.parent) chain.unshift(e)
  return Object.assign({}, ...chain.map((e) => e.fields))
}

/** Access to event objects for other bindings (dovecot.http 2.4: event_parent, set_event/get_event). */
export interface EventAccess {
  readonly scriptEvent: EventState
  /** The event (not passthrough) at `idx`, or undefined when that is no event object. */
  get(L: LuaThread, idx: number): EventState | undefined
  /** Pushes a new event object for `state` (dlua_push_event). */
  push(L: LuaThread, state: EventState): void
}

/** Creates `dovecot.event` for a state; returns the root (script) event, a pusher and object access. */
export function registerEvent(env: LuaEnv): { scriptEvent: EventState; pushEventFunction: () => void; access: EventAccess } {
  const { api, L } = env
  const objects = new LuaObjects<EventState>(api, L, 'event', { onPush: () => env.gc.observe('a dovecot.event') })
  // lua: prefix from the driver's context event; script=<file> from dlua_create_script
  const driverEvent: EventState = { parent: undefined, name: undefined, prefix: 'lua: ', replacesPrefix: false, alwaysLogSource: false, fields: {} }
  const scriptEvent: EventState = { parent: driverEvent, name: undefined, prefix: '', replacesPrefix: false, alwaysLogSource: false, fields: { script: env.scriptPath } }
  let pendingPassthrough: EventState | undefined

  const self = (SL: LuaThread, n: number, allowPassthrough = true): EventState => {
    requireArgs(api, SL, n)
    checkObject(api, SL, 1, EVENT)
    const ev = objects.get(SL, 1)
    if (ev === undefined || (!allowPassthrough && ev.passthroughOf !== undefined)) {
      return dluaError(api, SL, `Bad argument #1, expected ${EVENT} got table`)
    }
    return ev
  }
  const returnSelf = (SL: LuaThread): number => {
    api.pushvalue(SL, 1)
    return 1
  }

  const log = (level: Level) => (SL: LuaThread): number => {
    const ev = self(SL, 2)
    const msg = checkString(api, SL, 2)
    // dlua_get_file_line: the Lua caller's file (after the last '/') and line
    const where = api.where(SL, 1).replace(/:\s*$/, '')
    const source = where.slice(where.lastIndexOf('/') + 1)
    const sender = ev.passthroughOf ?? ev
    if (ev.passthroughOf !== undefined && pendingPassthrough === ev) pendingPassthrough = undefined
    if (level === 'debug' && !env.debug) return returnSelf(SL) // event_send_abort: dropped
    const fields = collectFields(ev)
    const shown = ev.alwaysLogSource || sender.alwaysLogSource ? `${source}: ` : ''
    env.log[level]({ event: ev.name ?? sender.name, fields, source }, `${eventPrefix(sender)}${shown}${msg}`)
    return returnSelf(SL)
  }

  const commonMethods: LuaMethods = {
    append_log_prefix: (SL) => {
      const ev = self(SL, 2)
      ev.prefix += checkString(api, SL, 2)
      return returnSelf(SL)
    },
    replace_log_prefix: (SL) => {
      const ev = self(SL, 2)
      ev.prefix = checkString(api, SL, 2)
      ev.replacesPrefix = true
      return returnSelf(SL)
    },
    set_name: (SL) => {
      const ev = self(SL, 2)
      ev.name = checkString(api, SL, 2)
      return returnSelf(SL)
    },
    set_always_log_source: (SL) => {
      self(SL, 1).alwaysLogSource = true
      return returnSelf(SL)
    },
    add_str: (SL) => {
      const ev = self(SL, 3)
      ev.fields[checkString(api, SL, 2)] = checkString(api, SL, 3)
      return returnSelf(SL)
    },
    add_int: (SL) => {
      const ev = self(SL, 3)
      ev.fields[checkString(api, SL, 2)] = checkInteger(api, SL, 3)
      return returnSelf(SL)
    },
    add_timeval: (SL) => {
      const ev = self(SL, 3)
      ev.fields[checkString(api, SL, 2)] = checkInteger(api, SL, 3)
      return returnSelf(SL)
    },
    inc_int: (SL) => {
      const ev = self(SL, 3)
      const key = checkString(api, SL, 2)
      const prev = ev.fields[key]
      ev.fields[key] = (typeof prev === 'number' ? prev : 0) + checkInteger(api, SL, 3)
      return returnSelf(SL)
    },
    log_debug: log('debug'),
    log_info: log('info'),
    log_warning: log('warn'),
    log_error: log('error'),
  }
  const forcedDebug: LuaMethods = env.dovecot === '2.4'
    ? { set_forced_debug: (SL) => (self(SL, 1), returnSelf(SL)), unset_forced_debug: (SL) => (self(SL, 1), returnSelf(SL)) }
    : {}

  const eventMethods: LuaMethods = {
    ...commonMethods,
    ...forcedDebug,
    passthrough_event: (SL) => {
      const ev = self(SL, 1, false)
      if (pendingPassthrough !== undefined) {
        if (env.dovecot === '2.3') {
          // src/lib/lib-event.c: i_panic("Can't create multiple passthrough events")
          api.raise(SL, "Can't create multiple passthrough events (Dovecot 2.3.19 panics here and the mail process dies)")
        }
        env.log.error(`lua: Passthrough event leaked by Lua script at ${api.where(SL, 1).replace(/:\s*$/, '')}`)
      }
      const pt: EventState = { parent: ev, name: undefined, prefix: '', replacesPrefix: false, alwaysLogSource: false, fields: {}, passthroughOf: ev }
      pendingPassthrough = pt
      pushObject(SL, pt, passthroughMtRef)
      return 1
    },
  }

  const makeMetatable = (name: string, methods: LuaMethods): number => {
    pushMethodTable(env, name, methods, 'event:')
    return api.ref(L)
  }
  const eventMtRef = makeMetatable(EVENT, eventMethods)
  const passthroughMtRef = makeMetatable(PASSTHROUGH, commonMethods)

  const pushObject = (SL: LuaThread, state: EventState, mtRef: number): void => {
    api.createtable(SL, 0, 1)
    objects.pushItem(SL, state)
    api.setfield(SL, -2, 'item')
    api.pushref(SL, mtRef)
    api.setmetatable(SL, -2)
  }

  const dovecotEvent = (SL: LuaThread): number => {
    requireArgsIn(api, SL, 0, 1)
    let parent = scriptEvent
    if (api.gettop(SL) === 1) {
      checkObject(api, SL, 1, EVENT)
      const p = objects.get(SL, 1)
      if (p === undefined || p.passthroughOf !== undefined) return dluaError(api, SL, `Bad argument #1, expected ${EVENT} got table`)
      parent = p
    }
    pushObject(SL, { parent, name: undefined, prefix: '', replacesPrefix: false, alwaysLogSource: false, fields: {} }, eventMtRef)
    return 1
  }

  return {
    scriptEvent,
    pushEventFunction: () => api.pushfunction(L, dovecotEvent, 'dovecot.event'),
    access: {
      scriptEvent,
      get: (SL, idx) => {
        if (api.type(SL, idx) !== LuaType.TABLE) return undefined
        const ev = objects.get(SL, idx)
        return ev === undefined || ev.passthroughOf !== undefined ? undefined : ev
      },
      push: (SL, state) => pushObject(SL, state, eventMtRef),
    },
  }
}
