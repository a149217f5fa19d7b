// The `dovecot` global table (src/lib-lua/dlua-dovecot.c, spec §5).
//
// `dovecot` is an empty table whose metatable (named "dovecot", `__index` =
// itself) holds the functions, so `pairs(dovecot)` shows only the sub-tables
// `http` and `storage` (recorded). i_* log through the process logger with no
// "lua: " prefix; events (event.ts) carry it.

import { type LuaThread, LuaType } from '../engine.js'
import { type LuaEnv, type LuaMethods, pushMethodTable } from '../env.js'
import { checkInteger, checkString, dluaError, requireArgs } from './args.js'
import { type EventAccess, registerEvent } from './event.js'
import { pushStorage } from './storage.js'

/**
 * Registers `dovecot` as a global (`pushHttp` pushes the `dovecot.http`
 * table); returns the registry ref of its metatable (the GC watch checks it).
 */
export function registerDovecot(env: LuaEnv, pushHttp: (events: EventAccess) => void): number {
  const { api, L } = env

  const log = (level: 'debug' | 'info' | 'warn' | 'error') => (SL: LuaThread): number => {
    requireArgs(api, SL, 1)
    env.log[level](checkString(api, SL, 1))
    return 0
  }

  // restrict_global_variables: the wording (sic) is Dovecot's, recorded.
  const strictIndex = (SL: LuaThread): number => {
    requireArgs(api, SL, 2)
    return dluaError(api, SL, `attempt to write to read undeclared global variable ${checkString(api, SL, 2)}`)
  }
  const strictNewindex = (SL: LuaThread): number => {
    requireArgs(api, SL, 3)
    if (api.type(SL, 3) === LuaType.FUNCTION) {
      api.rawset(SL, 1)
      return 0
    }
    return dluaError(api, SL, `attempt to write to undeclared global variable ${checkString(api, SL, 2)}`)
  }

  api.pushfunction(L, strictIndex, 'restrict_global_variables __index')
  const strictIndexRef = api.ref(L)
  api.pushfunction(L, strictNewindex, 'restrict_global_variables __newindex')
  const strictRefs = { index: strictIndexRef, newindex: api.ref(L) }

  const events = registerEvent(env)

  const dovecotMethods: LuaMethods = {
    i_debug: log('debug'),
    i_info: log('info'),
    i_warning: log('warn'),
    i_error: log('error'),
    has_flag: (SL) => {
      requireArgs(api, SL, 2)
      const value = checkInteger(api, SL, 1)
      const flag = checkInteger(api, SL, 2)
      api.pushboolean(SL, (BigInt(value) & BigInt(flag)) === BigInt(flag))
      return 1
    },
    set_flag: (SL) => {
      requireArgs(api, SL, 2)
      api.pushinteger(SL, Number(BigInt(checkInteger(api, SL, 1)) | BigInt(checkInteger(api, SL, 2))))
      return 1
    },
    clear_flag: (SL) => {
      requireArgs(api, SL, 2)
      api.pushinteger(SL, Number(BigInt(checkInteger(api, SL, 1)) & ~BigInt(checkInteger(api, SL, 2))))
      return 1
    },
    restrict_global_variables: (SL) => {
      requireArgs(api, SL, 1)
      const on = api.toboolean(SL, 1)
      api.getglobal(SL, '_G')
      api.createtable(SL, 0, on ? 2 : 0)
      if (on) {
        // a new metatable each time, as Dovecot makes; the two functions are made once
        api.pushref(SL, strictRefs.index)
        api.setfield(SL, -2, '__index')
        api.pushref(SL, strictRefs.newindex)
        api.setfield(SL, -2, '__newindex')
      }
      api.setmetatable(SL, -2)
      api.pop(SL, 1)
      return 0
    },
  }

  api.createtable(L, 0, 2) // dovecot
  pushHttp(events.access)
  api.setfield(L, -2, 'http')
  pushStorage(env)
  api.setfield(L, -2, 'storage')

  pushMethodTable(env, 'dovecot', dovecotMethods, 'dovecot.') // its metatable
  events.pushEventFunction()
  api.setfield(L, -2, 'event')
  api.pushvalue(L, -1)
  const mtRef = api.ref(L)
  api.setmetatable(L, -2)
  api.setglobal(L, 'dovecot')
  return mtRef
}
