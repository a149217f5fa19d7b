// The full garbage collection Dovecot runs after every transaction (spec
// §1.4 step 7), and when dovepush may leave it out.
//
// A full collection is the largest single cost of a transaction here (a WASM
// Lua walks its whole heap, dovepush's bindings included). What a script can
// see of it is: finalizers (__gc) running, weak-table entries (__mode)
// disappearing, and collectgarbage's answers. All three need a metatable the
// script made or reached, or an object of dovepush's with a finalizer. So a
// session starts without the per-transaction collection (Lua's incremental
// collector reclaims the garbage, and an allocation that would pass the
// memory limit still runs a full collection first) and switches it on for
// good, before the call returns, the first time any of these happens:
// - the script calls setmetatable, getmetatable, collectgarbage,
//   debug.setmetatable, debug.getmetatable or debug.getregistry (each
//   replaced here by a function that does exactly what Lua's does, argument
//   errors included, and then switches);
// - dovepush hands the script an object whose collection does something: a
//   mailbox, a dovecot.event, an open file (closed when collected), or a
//   cjson array carrying cjson.array_mt (dovecot.http's objects are not among
//   them: their finalizers only forget JS state, and a collected client's
//   connections stay in the Lua state's pool, as in Dovecot's global
//   http_client context);
// - a metatable the script can reach without getmetatable (the user object's
//   and dovecot's, through their `__index`) gains __gc or __mode (checked
//   after each transaction).
// The user object's own `item` finalizer is dovepush's bookkeeping and does
// nothing a script can see. `dovepush run --full-gc always` collects after
// every transaction from the start, as Dovecot does.

import { type LuaEnv, runOwnChunk } from '../env.js'
import type { LuaThread } from '../engine.js'
import { LuaType } from '../engine.js'

export type FullGc = 'always' | 'observable'
export const FULL_GC_MODES: readonly FullGc[] = ['observable', 'always']

/** Per state: whether the full collection after each transaction can be seen yet. */
export class GcWatch {
  #observable: boolean
  #why: string | undefined
  readonly #onSwitch: ((why: string) => void) | undefined

  constructor(mode: FullGc, onSwitch?: (why: string) => void) {
    this.#observable = mode === 'always'
    this.#why = mode === 'always' ? '--full-gc always' : undefined
    this.#onSwitch = onSwitch
  }

  /** True once the collection must run after every transaction. */
  get observable(): boolean {
    return this.#observable
  }

  /** What switched it on, if anything. */
  get why(): string | undefined {
    return this.#why
  }

  /** Switches the per-transaction collection on for the rest of the session. */
  observe(why: string): void {
    if (this.#observable) return
    this.#observable = true
    this.#why = why
    this.#onSwitch?.(why)
  }
}

// luaB_collectgarbage's options, and how many optional integer arguments each takes
const GC_OPTIONS: ReadonlyMap<string, number> = new Map([
  ['stop', 0], ['restart', 0], ['collect', 0], ['count', 0], ['step', 1], ['setpause', 1],
  ['setstepmul', 1], ['isrunning', 0], ['generational', 2], ['incremental', 3],
])

/**
 * Replaces the functions through which a script could see a collection (see
 * above); returns the registry ref of Lua's own collectgarbage.
 */
export function registerGcWatch(env: LuaEnv, watch: GcWatch): { originalCollectRef: number } {
  const { api, L } = env

  /** luaL_optinteger's checks for argument n (its value is not needed here). */
  const optInteger = (SL: LuaThread, n: number): void => {
    const t = api.type(SL, n)
    if (t === LuaType.NONE || t === LuaType.NIL) return
    if (api.tointeger(SL, n) !== undefined) return
    if (api.isnumber(SL, n)) return api.argerror(SL, n, 'number has no integer representation')
    return api.typeerror(SL, n, 'number')
  }
  /** luaL_checkany. */
  const checkAny = (SL: LuaThread, n: number): void => {
    if (api.type(SL, n) === LuaType.NONE) api.argerror(SL, n, 'value expected')
  }
  /** luaL_getmetafield(L, idx, "__metatable") != LUA_TNIL; pushes the field when present. */
  const protectedMetatable = (SL: LuaThread, idx: number): boolean => {
    if (!api.getmetatable(SL, idx)) return false
    api.rawgetfield(SL, -1, '__metatable')
    if (api.type(SL, -1) === LuaType.NIL) {
      api.pop(SL, 2)
      return false
    }
    api.remove(SL, -2)
    return true
  }

  // luaB_setmetatable
  api.pushfunction(L, (SL) => {
    const t = api.type(SL, 2)
    if (api.type(SL, 1) !== LuaType.TABLE) api.typeerror(SL, 1, 'table')
    if (t !== LuaType.NIL && t !== LuaType.TABLE) api.typeerror(SL, 2, 'nil or table')
    if (protectedMetatable(SL, 1)) api.raise(SL, 'cannot change a protected metatable')
    watch.observe('setmetatable')
    api.settop(SL, 2)
    api.setmetatable(SL, 1)
    return 1
  }, 'setmetatable')
  api.setglobal(L, 'setmetatable')

  // luaB_getmetatable
  api.pushfunction(L, (SL) => {
    checkAny(SL, 1)
    watch.observe('getmetatable')
    if (!api.getmetatable(SL, 1)) {
      api.pushnil(SL)
      return 1
    }
    api.rawgetfield(SL, -1, '__metatable') // luaL_getmetafield: raw
    if (api.type(SL, -1) === LuaType.NIL) api.pop(SL, 1)
    return 1
  }, 'getmetatable')
  api.setglobal(L, 'getmetatable')

  // collectgarbage: Lua's own, after luaL_checkoption's and luaL_optinteger's checks
  api.getglobal(L, 'collectgarbage')
  const originalCollectRef = api.ref(L)
  api.pushfunction(L, (SL) => {
    let option = 'collect'
    const t = api.type(SL, 1)
    if (t !== LuaType.NONE && t !== LuaType.NIL) {
      option = api.tostring(SL, 1) ?? api.typeerror(SL, 1, 'string')
    }
    const nopt = GC_OPTIONS.get(option) ?? api.argerror(SL, 1, `invalid option '${option}'`)
    for (let n = 2; n < 2 + nopt; n++) optInteger(SL, n)
    watch.observe('collectgarbage')
    const nargs = api.gettop(SL)
    api.pushref(SL, originalCollectRef)
    api.insert(SL, 1)
    api.call(SL, nargs, -1)
    return api.gettop(SL)
  }, 'collectgarbage')
  api.setglobal(L, 'collectgarbage')

  api.getglobal(L, 'debug')
  // db_getmetatable
  api.pushfunction(L, (SL) => {
    checkAny(SL, 1)
    watch.observe('debug.getmetatable')
    if (!api.getmetatable(SL, 1)) api.pushnil(SL)
    return 1
  }, 'debug.getmetatable')
  api.setfield(L, -2, 'getmetatable')
  // db_setmetatable
  api.pushfunction(L, (SL) => {
    const t = api.type(SL, 2)
    if (t !== LuaType.NIL && t !== LuaType.TABLE) api.typeerror(SL, 2, 'nil or table')
    watch.observe('debug.setmetatable')
    api.settop(SL, 2)
    api.setmetatable(SL, 1)
    return 1
  }, 'debug.setmetatable')
  api.setfield(L, -2, 'setmetatable')
  // db_getregistry
  api.pushfunction(L, (SL) => {
    watch.observe('debug.getregistry')
    api.pushvalue(SL, api.REGISTRYINDEX)
    return 1
  }, 'debug.getregistry')
  api.setfield(L, -2, 'getregistry')
  api.pop(L, 1)

  return { originalCollectRef }
}

/**
 * A Lua function (registry ref) answering whether one of the metatables
 * behind `refs` has gained __gc or __mode: one call after each transaction.
 */
export function metatableCheck(env: LuaEnv, refs: readonly number[]): number {
  const { api, L } = env
  const names = refs.map((_, i) => `m${i + 1}`)
  const test = names.map((m) => `rawget(${m}, "__gc") ~= nil or rawget(${m}, "__mode") ~= nil`).join(' or ') || 'false'
  const source = `local rawget = rawget\nreturn function(${names.join(', ')}) return function() return ${test} end end`
  runOwnChunk(api, L, 'gc check', source)
  for (const ref of refs) api.pushref(L, ref)
  api.call(L, refs.length, 1)
  return api.ref(L)
}
