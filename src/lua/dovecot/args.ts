// Argument checks with Dovecot's wording (src/lib-lua/dlua-script-private.h)
// and Lua's own (luaL_check*). Scripts see these strings: they are fidelity.

import { type LuaApi, type LuaThread, LuaType } from '../engine.js'

/**
 * Dovecot's luaL_error. dlua-script-private.h redefines `luaL_error` as
 * `dluaL_error` (src/lib-lua/dlua-error.c), which formats the message and
 * calls lua_error WITHOUT luaL_where's "<file>:<line>: " prefix. So every
 * error Dovecot's own bindings raise has no position (recorded: `expected 1
 * arguments, got 0`, `attempt to write to undeclared global variable
 * newglobal`), while luaL_argerror/luaL_check* (liblua's real luaL_error)
 * keep it (recorded: `…push2.lua:26: bad argument #2 to 'add_int' …`).
 */
export function dluaError(api: LuaApi, L: LuaThread, msg: string): never {
  api.pushstring(L, msg)
  return api.error(L)
}

/** DLUA_REQUIRE_ARGS: "expected %d arguments, got %d" (always plural). */
export function requireArgs(api: LuaApi, L: LuaThread, n: number): void {
  const got = api.gettop(L)
  if (got !== n) dluaError(api, L, `expected ${n} arguments, got ${got}`)
}

/** DLUA_REQUIRE_ARGS_IN: "expected %d to %d arguments, got %d". */
export function requireArgsIn(api: LuaApi, L: LuaThread, min: number, max: number): void {
  const got = api.gettop(L)
  if (got < min || got > max) dluaError(api, L, `expected ${min} to ${max} arguments, got ${got}`)
}

/** luaL_checkstring: a string, or a number converted as lua_tostring does. */
export function checkString(api: LuaApi, L: LuaThread, arg: number): string {
  const s = api.tostring(L, arg)
  if (s === undefined) return api.typeerror(L, arg, 'string')
  return s
}

/** luaL_checkinteger: an integer, or an integral float. */
export function checkInteger(api: LuaApi, L: LuaThread, arg: number): number {
  const n = api.tointeger(L, arg)
  if (n === undefined) {
    if (api.isnumber(L, arg)) return api.argerror(L, arg, 'number has no integer representation')
    return api.typeerror(L, arg, 'number')
  }
  return n
}

/** Dovecot's own object check ("Bad argument #%d, expected %s got %s"): a table with an `item`. */
export function checkObject(api: LuaApi, L: LuaThread, arg: number, typeName: string): void {
  const t = api.type(L, arg)
  if (t !== LuaType.TABLE) {
    dluaError(api, L, `Bad argument #${arg}, expected ${typeName} got ${api.typename(L, t)}`)
  }
}
