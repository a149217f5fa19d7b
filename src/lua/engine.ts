// The engine interface: a thin, engine-neutral slice of the Lua C API.
//
// Bindings (src/lua/dovecot/*, src/lua/stdlib/*) are written against this
// interface the way Dovecot's lib-lua is written against lua.h: functions take
// the Lua thread first and work on its stack. wasmoon (Lua 5.4, default) and
// fengari (Lua 5.3, 32-bit integers) implement it. Calling through the C API
// on a reused thread is ~10x faster than wasmoon's `global.get(fn)(...)`
// (DESIGN.md, "Calls into Lua"), and it is what lets a host function suspend
// the script with a yield (see src/lua/call.ts).

/** An opaque Lua thread handle (`lua_State *`). */
export type LuaThread = { readonly __luaThread: unique symbol } | number

/** Lua type tags, the numbers of lua.h. */
export const LuaType = {
  NONE: -1,
  NIL: 0,
  BOOLEAN: 1,
  LIGHTUSERDATA: 2,
  NUMBER: 3,
  STRING: 4,
  TABLE: 5,
  FUNCTION: 6,
  USERDATA: 7,
  THREAD: 8,
} as const
export type LuaTypeTag = (typeof LuaType)[keyof typeof LuaType]

/** Status codes of lua_resume / lua_pcall / lua_load (lua.h). */
export const LuaStatus = {
  OK: 0,
  YIELD: 1,
  ERRRUN: 2,
  ERRSYNTAX: 3,
  ERRMEM: 4,
  ERRERR: 5,
} as const

/** The registry pseudo-index differs between engines: use `api.REGISTRYINDEX`. */

/**
 * A function callable from Lua. It reads its arguments from the stack of `L`
 * (1..gettop), pushes its results and returns how many. To raise a Lua error
 * it calls `api.error`/`api.raise` (which never return). A JS exception thrown
 * by a host function is turned into a Lua error naming the function: that is
 * a dovepush bug, not a script error, and the message says so.
 */
export type HostFunction = (L: LuaThread) => number

/** Options of one Lua state, validated by the caller. */
export interface StateOptions {
  /** Memory cap in bytes for this state; allocation beyond it fails ("not enough memory"). */
  memoryLimit?: number
}

/**
 * One Lua state and the C-API calls dovepush needs. Every method mirrors the
 * lua.h/lauxlib.h function of the same name unless its comment says otherwise.
 */
export interface LuaApi {
  readonly engine: 'wasmoon' | 'fengari'
  /** `_VERSION`, e.g. "Lua 5.4". */
  readonly version: string
  /** 64 for Lua 5.4 (wasmoon), 32 for fengari. */
  readonly integerBits: 64 | 32
  readonly REGISTRYINDEX: number
  /** The main thread of this state. */
  readonly main: LuaThread

  gettop(L: LuaThread): number
  settop(L: LuaThread, idx: number): void
  pop(L: LuaThread, n: number): void
  pushvalue(L: LuaThread, idx: number): void
  absindex(L: LuaThread, idx: number): number
  /** Moves the top element to position idx (lua_insert). */
  insert(L: LuaThread, idx: number): void
  remove(L: LuaThread, idx: number): void
  xmove(from: LuaThread, to: LuaThread, n: number): void
  checkstack(L: LuaThread, n: number): boolean

  pushnil(L: LuaThread): void
  pushboolean(L: LuaThread, b: boolean): void
  /** Pushes a float (lua_pushnumber): what Dovecot uses for event numbers. */
  pushnumber(L: LuaThread, n: number): void
  /** Pushes an integer (lua_pushinteger); n must be a safe integer. */
  pushinteger(L: LuaThread, n: number): void
  /** Pushes a JS string as UTF-8 bytes. */
  pushstring(L: LuaThread, s: string): void
  /** Pushes raw bytes as a Lua string (binary safe). */
  pushbytes(L: LuaThread, b: Uint8Array): void
  /** Pushes a C closure that runs `fn`; `name` appears in dovepush's own error messages. */
  pushfunction(L: LuaThread, fn: HostFunction, name: string): void
  /**
   * Pushes a new full userdata. With `id` (an unsigned 32-bit integer) the
   * block carries it, for `userdataid` to read back: host objects find
   * their JS state that way, without a weak table the GC must visit.
   */
  newuserdata(L: LuaThread, id?: number): void
  /** The id stored by newuserdata(L, id) in the full userdata at idx, else undefined. */
  userdataid(L: LuaThread, idx: number): number | undefined

  createtable(L: LuaThread, narr: number, nrec: number): void
  /** t[k] = top, t at idx; pops the value. May call metamethods. */
  setfield(L: LuaThread, idx: number, k: string): void
  getfield(L: LuaThread, idx: number, k: string): LuaTypeTag
  /** Raw t[k] = v for a string key without metamethods (lua_rawset with a pushed key). */
  rawsetfield(L: LuaThread, idx: number, k: string): void
  rawgetfield(L: LuaThread, idx: number, k: string): LuaTypeTag
  rawset(L: LuaThread, idx: number): void
  rawget(L: LuaThread, idx: number): LuaTypeTag
  rawseti(L: LuaThread, idx: number, i: number): void
  rawgeti(L: LuaThread, idx: number, i: number): LuaTypeTag
  settable(L: LuaThread, idx: number): void
  gettable(L: LuaThread, idx: number): LuaTypeTag
  setmetatable(L: LuaThread, idx: number): void
  /** Pushes the metatable and returns true, or pushes nothing and returns false. */
  getmetatable(L: LuaThread, idx: number): boolean
  getglobal(L: LuaThread, name: string): LuaTypeTag
  setglobal(L: LuaThread, name: string): void
  next(L: LuaThread, idx: number): boolean

  type(L: LuaThread, idx: number): LuaTypeTag
  typename(L: LuaThread, tag: LuaTypeTag): string
  tonumber(L: LuaThread, idx: number): number
  /** lua_tonumberx's isnum: the value is a number or a string convertible to one. */
  isnumber(L: LuaThread, idx: number): boolean
  isinteger(L: LuaThread, idx: number): boolean
  /** lua_tointegerx: the integer value, or undefined if it has no integer representation. */
  tointeger(L: LuaThread, idx: number): number | undefined
  toboolean(L: LuaThread, idx: number): boolean
  /** The string (UTF-8 decoded) of a string or number value, else undefined. Does NOT convert in place. */
  tostring(L: LuaThread, idx: number): string | undefined
  /** The raw bytes of a string or number value, else undefined. */
  tobytes(L: LuaThread, idx: number): Uint8Array | undefined
  /** luaL_tolstring: any value to string, honouring __tostring/__name. Pushes nothing. */
  tostringmeta(L: LuaThread, idx: number): string
  rawlen(L: LuaThread, idx: number): number
  rawequal(L: LuaThread, a: number, b: number): boolean
  tothread(L: LuaThread, idx: number): LuaThread | undefined
  /** Identity of a GC object (for tables seen/cycle checks). */
  topointer(L: LuaThread, idx: number): unknown

  /** luaL_ref into the registry (pops the value). */
  ref(L: LuaThread): number
  unref(L: LuaThread, ref: number): void
  /** Pushes registry[ref]. */
  pushref(L: LuaThread, ref: number): void

  /** lua_error: raises the value on top. Never returns. */
  error(L: LuaThread): never
  /** luaL_error: raises msg with luaL_where(L, 1) prefixed. Never returns. */
  raise(L: LuaThread, msg: string): never
  /** luaL_argerror: "bad argument #arg to 'fn' (extramsg)", with Lua's own naming rules. Never returns. */
  argerror(L: LuaThread, arg: number, extramsg: string): never
  /** luaL_typeerror: "<tname> expected, got <type>" as an argument error. Never returns. */
  typeerror(L: LuaThread, arg: number, tname: string): never
  /** luaL_where(L, level) as a string. */
  where(L: LuaThread, level: number): string
  /** luaL_traceback(L, L1, msg, level): pushes the traceback string onto L. */
  traceback(L: LuaThread, L1: LuaThread, msg: string | undefined, level: number): void

  /** lua_newthread: pushes and returns a new thread. */
  newthread(L: LuaThread): LuaThread
  /** lua_resume(L, from, nargs); the number of results is in `lastResults`. */
  resume(L: LuaThread, from: LuaThread | null, nargs: number): number
  /** Results of the last resume (the nresults out-parameter of lua_resume). */
  readonly lastResults: number
  /** Resets a dead (errored) thread so it can be reused (lua_resetthread; fengari: a new thread is needed). */
  resetthread(L: LuaThread): boolean
  status(L: LuaThread): number
  isyieldable(L: LuaThread): boolean
  /** lua_yield from a host function: `return api.yield(L, n)`. */
  yield(L: LuaThread, nresults: number): number
  /** lua_load of a chunk; pushes the function or the error message. */
  load(L: LuaThread, chunk: Uint8Array, chunkname: string, mode?: 't' | 'b' | 'bt'): number
  pcall(L: LuaThread, nargs: number, nresults: number, msgh: number): number
  call(L: LuaThread, nargs: number, nresults: number): void

  /**
   * Installs a count hook on L (lua_sethook with LUA_MASKCOUNT): `fn` runs
   * every `count` VM instructions and may raise with `api.raise`. null removes it.
   * Threads created later from L inherit the hook (Lua copies it in lua_newthread).
   */
  sethook(L: LuaThread, fn: ((L: LuaThread) => void) | null, count: number): void

  /** Host functions pushed so far (each holds JS state until the state closes): a leak check. */
  readonly hostFunctions: number
  /** Bytes currently allocated by this state (when it tracks memory). */
  memoryUsed(): number
  /** lua_close and release every host function of this state. */
  close(): void
}

/** Creates Lua states of one engine. Owned by a Host: engines keep no module-level state. */
export interface LuaEngine {
  readonly name: 'wasmoon' | 'fengari'
  /** wasmoon: where lua_Alloc runs ('wasm', or 'js' if the WebAssembly one could not be installed). */
  readonly allocator?: 'wasm' | 'js'
  newState(options?: StateOptions): LuaApi
}

export type EngineName = LuaEngine['name']
export const ENGINE_NAMES: readonly EngineName[] = ['wasmoon', 'fengari']

/** Loads the named engine (lazily, so `dovepush --help` never loads wasmoon). */
export async function createEngine(name: EngineName): Promise<LuaEngine> {
  if (name === 'fengari') {
    const { createFengariEngine } = await import('./fengari.js')
    return createFengariEngine()
  }
  const { createWasmoonEngine } = await import('./wasmoon.js')
  return createWasmoonEngine()
}
