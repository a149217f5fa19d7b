// The fengari engine: Lua 5.3 reimplemented in JavaScript (the alternative).
//
// fengari's C API is a plain JS module (`lua`, `lauxlib`, `lualib`), so this
// file is a thin adapter: a LuaThread is fengari's lua_State object, Lua
// strings are Uint8Array (JS strings are encoded as UTF-8 on the way in and
// decoded, non-fatally, on the way out), and a host function is a JS closure
// pushed with lua_pushcclosure (no dispatcher table: the closure holds `fn`).
//
// Differences from the wasmoon engine the rest of dovepush must know about:
// - Integers are 32-bit (`math.maxinteger == 2147483647`). fengari's
//   lua_pushinteger throws a TypeError for anything that is not an int32, so
//   `pushinteger` pushes a value outside the int32 range as a float (exact up
//   to 2^53): a UID above 2^31 reaches the script as a float, and
//   `tointeger` of such a float is undefined (it has no Lua integer
//   representation), exactly as lua_tointegerx says.
// - Memory is not tracked: fengari allocates on the shared JS heap and has no
//   allocator hook, so `StateOptions.memoryLimit` is ignored and
//   `memoryUsed()` is always 0. Memory limits are not enforced on fengari.
// - There is no lua_resetthread: `resetthread` returns false and the caller
//   makes a new thread.
// - lua_resume has no nresults out-parameter (5.3): `lastResults` is the
//   thread's stack size after the resume, which after a yield is exactly the
//   yielded values and after a return the results when the caller pushed the
//   function and arguments on an empty thread.
//
// A Lua error or yield raised from JS (lua_error, lua_yield, a hook) unwinds
// with a JS `throw` of the thread's current error-jump record, a plain object
// `{ status, previous }` made by luaD_rawrunprotected (fengari/src/ldo.js,
// luaD_throw): never swallow it. Any other JS exception that escapes into
// fengari would make lua_resume/lua_pcall return a bare status with no error
// value on the stack (status -1 internally), so host functions convert their
// exceptions into Lua errors themselves, and a lua_atnativeerror handler does
// the same for exceptions raised inside fengari itself.

// @ts-ignore -- fengari ships no type declarations (CommonJS, typed as Raw below)
import fengariModule from 'fengari'
import {
  type LuaApi,
  type LuaEngine,
  type LuaThread,
  type LuaTypeTag,
  LuaType,
  type StateOptions,
} from './engine.js'

// fengari's API: functions take and return lua_State objects, Uint8Array
// strings, JS numbers and booleans.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = any

const MAX_INTERNED_KEYS = 4096

/**
 * Whether `e` is a Lua error or yield unwinding through JS: the error-jump
 * record luaD_throw throws (`{ status, previous }`, status != LUA_OK).
 */
const isLuaJump = (e: unknown): boolean =>
  typeof e === 'object' &&
  e !== null &&
  Object.getPrototypeOf(e) === Object.prototype &&
  'previous' in e &&
  'status' in e &&
  typeof e.status === 'number' &&
  e.status !== 0

const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err))

export function createFengariEngine(): LuaEngine {
  const { lua, lauxlib, lualib, to_luastring } = fengariModule as Raw
  const decoder = new TextDecoder()
  // Keys (field and global names) encoded once. fengari copies the bytes
  // into its own strings (luaS_new), so sharing these arrays is safe.
  const interned = new Map<string, Uint8Array>()

  const luastr = (s: string): Uint8Array => {
    let b = interned.get(s)
    if (b !== undefined) return b
    b = to_luastring(s) as Uint8Array
    if (interned.size < MAX_INTERNED_KEYS && b.length < 256) interned.set(s, b)
    return b
  }
  const decode = (b: Uint8Array): string => decoder.decode(b)

  const pushJsString = (L: Raw, s: string): void => {
    const b = to_luastring(s) as Uint8Array
    lua.lua_pushlstring(L, b, b.length)
  }

  /** The string on top of L, decoded, then popped. */
  const popString = (L: Raw): string => {
    const s = decode(lua.lua_tolstring(L, -1) as Uint8Array)
    lua.lua_settop(L, -2)
    return s
  }

  const raiseError = (L: Raw): never => {
    lua.lua_error(L)
    throw new Error('unreachable: lua_error returned')
  }

  function newState(_options: StateOptions = {}): LuaApi {
    // _options.memoryLimit is ignored: fengari cannot track allocations.
    const main = lauxlib.luaL_newstate() as Raw
    if (main === null || main === undefined) throw new Error('lua_newstate failed')
    lualib.luaL_openlibs(main)
    repairPcallHooks(main)
    // A JS exception thrown inside fengari (not by a host function, which
    // converts its own) becomes a Lua error instead of a bare status.
    lua.lua_atnativeerror(main, (L: Raw): number => {
      const e: unknown = lua.lua_touserdata(L, -1)
      pushJsString(L, `dovepush internal error in fengari: ${errorMessage(e)}`)
      return 1
    })
    let lastResults = 0
    let hostFunctions = 0
    let closed = false

    const api: LuaApi = {
      engine: 'fengari',
      version: 'Lua 5.3',
      integerBits: 32,
      REGISTRYINDEX: lua.LUA_REGISTRYINDEX as number,
      main: main as LuaThread,
      get hostFunctions() {
        return hostFunctions
      },
      get lastResults() {
        return lastResults
      },

      gettop: (L) => lua.lua_gettop(L),
      settop: (L, idx) => lua.lua_settop(L, idx),
      pop: (L, n) => lua.lua_settop(L, -n - 1),
      pushvalue: (L, idx) => lua.lua_pushvalue(L, idx),
      absindex: (L, idx) => lua.lua_absindex(L, idx),
      insert: (L, idx) => lua.lua_rotate(L, idx, 1),
      remove: (L, idx) => {
        lua.lua_rotate(L, idx, -1)
        lua.lua_settop(L, -2)
      },
      xmove: (from, to, n) => lua.lua_xmove(from, to, n),
      checkstack: (L, n) => Boolean(lua.lua_checkstack(L, n)),

      pushnil: (L) => lua.lua_pushnil(L),
      pushboolean: (L, b) => lua.lua_pushboolean(L, b),
      pushnumber: (L, n) => lua.lua_pushnumber(L, n),
      pushinteger: (L, n) => {
        // fengari integers are int32 and lua_pushinteger throws otherwise:
        // keep the value, as a float (see the header comment).
        if ((n | 0) === n) lua.lua_pushinteger(L, n)
        else lua.lua_pushnumber(L, n)
      },
      pushstring: (L, s) => pushJsString(L, s),
      pushbytes: (L, b) => {
        lua.lua_pushlstring(L, b, b.length) // copies (luaS_new)
      },
      pushfunction: (L, fn, name) => {
        hostFunctions++
        lua.lua_pushcclosure(
          L,
          (HL: Raw): number => {
            try {
              return fn(HL as LuaThread)
            } catch (err) {
              if (isLuaJump(err)) throw err // a Lua error or yield in flight
              pushJsString(HL, `dovepush internal error in ${name}: ${errorMessage(err)}`)
              return raiseError(HL)
            }
          },
          0,
        )
      },
      // fengari's userdata block is a plain JS object (Udata.data, size ignored)
      newuserdata: (L, id) => {
        const data = lua.lua_newuserdata(L, 0) as Record<string, unknown>
        if (id !== undefined) data.dovepushId = id
      },
      userdataid: (L, idx) => {
        if (lua.lua_type(L, idx) !== LuaType.USERDATA) return undefined
        const id = (lua.lua_touserdata(L, idx) as Record<string, unknown> | null)?.dovepushId
        return typeof id === 'number' ? id : undefined
      },

      createtable: (L, narr, nrec) => lua.lua_createtable(L, narr, nrec),
      setfield: (L, idx, k) => lua.lua_setfield(L, idx, luastr(k)),
      getfield: (L, idx, k) => lua.lua_getfield(L, idx, luastr(k)) as LuaTypeTag,
      rawsetfield: (L, idx, k) => {
        const t = lua.lua_absindex(L, idx)
        lua.lua_pushstring(L, luastr(k))
        lua.lua_rotate(L, -2, 1)
        lua.lua_rawset(L, t)
      },
      rawgetfield: (L, idx, k) => {
        const t = lua.lua_absindex(L, idx)
        lua.lua_pushstring(L, luastr(k))
        return lua.lua_rawget(L, t) as LuaTypeTag
      },
      rawset: (L, idx) => lua.lua_rawset(L, idx),
      rawget: (L, idx) => lua.lua_rawget(L, idx) as LuaTypeTag,
      rawseti: (L, idx, i) => lua.lua_rawseti(L, idx, i),
      rawgeti: (L, idx, i) => lua.lua_rawgeti(L, idx, i) as LuaTypeTag,
      settable: (L, idx) => lua.lua_settable(L, idx),
      gettable: (L, idx) => lua.lua_gettable(L, idx) as LuaTypeTag,
      setmetatable: (L, idx) => {
        lua.lua_setmetatable(L, idx)
      },
      getmetatable: (L, idx) => Boolean(lua.lua_getmetatable(L, idx)),
      getglobal: (L, name) => lua.lua_getglobal(L, luastr(name)) as LuaTypeTag,
      setglobal: (L, name) => lua.lua_setglobal(L, luastr(name)),
      next: (L, idx) => Boolean(lua.lua_next(L, idx)),

      type: (L, idx) => lua.lua_type(L, idx) as LuaTypeTag,
      typename: (L, tag) => decode(lua.lua_typename(L, tag) as Uint8Array),
      tonumber: (L, idx) => {
        const n = lua.lua_tonumberx(L, idx) as number | false
        return n === false ? 0 : n
      },
      isnumber: (L, idx) => Boolean(lua.lua_isnumber(L, idx)),
      isinteger: (L, idx) => Boolean(lua.lua_isinteger(L, idx)),
      tointeger: (L, idx) => {
        const n = lua.lua_tointegerx(L, idx) as number | false
        return n === false ? undefined : n
      },
      toboolean: (L, idx) => Boolean(lua.lua_toboolean(L, idx)),
      tostring: (L, idx) => {
        const t = lua.lua_type(L, idx)
        if (t === LuaType.STRING) return decode(lua.lua_tolstring(L, idx) as Uint8Array)
        if (t === LuaType.NUMBER) {
          lua.lua_pushvalue(L, idx) // lua_tolstring converts in place: use a copy
          return popString(L)
        }
        return undefined
      },
      tobytes: (L, idx) => {
        const t = lua.lua_type(L, idx)
        if (t !== LuaType.STRING && t !== LuaType.NUMBER) return undefined
        lua.lua_pushvalue(L, idx)
        const b = (lua.lua_tolstring(L, -1) as Uint8Array).slice() // fengari's own array: copy
        lua.lua_settop(L, -2)
        return b
      },
      tostringmeta: (L, idx) => {
        lauxlib.luaL_tolstring(L, idx)
        return popString(L)
      },
      rawlen: (L, idx) => lua.lua_rawlen(L, idx),
      rawequal: (L, a, b) => Boolean(lua.lua_rawequal(L, a, b)),
      tothread: (L, idx) => {
        const t = lua.lua_tothread(L, idx) as Raw
        return t === null ? undefined : (t as LuaThread)
      },
      // The GC object itself (null for non-objects, including strings).
      topointer: (L, idx) => lua.lua_topointer(L, idx) as unknown,

      ref: (L) => lauxlib.luaL_ref(L, lua.LUA_REGISTRYINDEX),
      unref: (L, ref) => lauxlib.luaL_unref(L, lua.LUA_REGISTRYINDEX, ref),
      pushref: (L, ref) => {
        lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, ref)
      },

      error: (L) => raiseError(L),
      raise: (L, msg) => {
        lauxlib.luaL_where(L, 1)
        pushJsString(L, msg)
        lua.lua_concat(L, 2)
        return raiseError(L)
      },
      argerror: (L, arg, extramsg) => {
        lauxlib.luaL_argerror(L, arg, to_luastring(extramsg))
        throw new Error('unreachable: luaL_argerror returned')
      },
      typeerror: (L, arg, tname) => {
        // fengari does not export luaL_typeerror: the same steps (lauxlib.c)
        let typearg: string
        if (lauxlib.luaL_getmetafield(L, arg, luastr('__name')) === LuaType.STRING) {
          typearg = decode(lua.lua_tolstring(L, -1) as Uint8Array)
        } else if (lua.lua_type(L, arg) === LuaType.LIGHTUSERDATA) {
          typearg = 'light userdata'
        } else {
          typearg = decode(lua.lua_typename(L, lua.lua_type(L, arg)) as Uint8Array)
        }
        lauxlib.luaL_argerror(L, arg, to_luastring(`${tname} expected, got ${typearg}`))
        throw new Error('unreachable: luaL_argerror returned')
      },
      where: (L, level) => {
        lauxlib.luaL_where(L, level)
        return popString(L)
      },
      traceback: (L, L1, msg, level) => {
        lauxlib.luaL_traceback(L, L1, msg === undefined ? null : to_luastring(msg), level)
      },

      newthread: (L) => lua.lua_newthread(L) as LuaThread,
      resume: (L, from, nargs) => {
        // fengari checks API preconditions (api_check is on): resuming a dead
        // or running thread pushes its error message past ci.top and throws
        // "stack overflow" unless the stack has room.
        lua.lua_checkstack(L, 1)
        const st = lua.lua_resume(L, from, nargs) as number
        lastResults = lua.lua_gettop(L) as number
        return st
      },
      resetthread: () => false,
      status: (L) => lua.lua_status(L),
      isyieldable: (L) => Boolean(lua.lua_isyieldable(L)),
      yield: (L, n) => {
        lua.lua_yield(L, n) // throws, except inside a hook where it returns
        return 0
      },
      load: (L, chunk, chunkname, mode = 'bt') =>
        lauxlib.luaL_loadbufferx(L, chunk, chunk.length, luastr(chunkname), luastr(mode)),
      pcall: (L, nargs, nresults, msgh) => lua.lua_pcall(L, nargs, nresults, msgh),
      call: (L, nargs, nresults) => lua.lua_call(L, nargs, nresults),

      sethook: (L, fn, count) => {
        if (fn === null) {
          lua.lua_sethook(L, null, 0, 0)
          return
        }
        lua.lua_sethook(
          L,
          (HL: Raw): void => {
            try {
              fn(HL as LuaThread)
            } catch (err) {
              if (isLuaJump(err)) throw err
              pushJsString(HL, `dovepush internal error in hook: ${errorMessage(err)}`)
              raiseError(HL)
            }
          },
          lua.LUA_MASKCOUNT,
          count,
        )
      },

      memoryUsed: () => 0,
      close: () => {
        if (closed) return
        closed = true
        lua.lua_close(main)
      },
    }
    return api
  }

  return { name: 'fengari', newState }
}

// fengari 0.1.5 bug: lua_pcallk never records the caller's `allowhook` in
// CIST_OAH (`callstatus &= ~CIST_OAH | allowhook` can only clear the bit), so
// when an error raised inside a hook is caught by a yieldable pcall, hooks
// stay disabled on that thread for good: the call timeout would never fire
// again. pcall/xpcall are wrapped to turn hooks back on after they return.
// (Lua's C implementation restores it: setoah in lapi.c.)
function repairPcallHooks(L: Raw): void {
  const { lua, lauxlib, to_luastring } = fengariModule as Raw
  lua.lua_pushjsfunction(L, (FL: Raw) => {
    FL.allowhook = 1
    return lua.lua_gettop(FL)
  })
  lua.lua_getglobal(L, to_luastring('pcall'))
  lua.lua_getglobal(L, to_luastring('xpcall'))
  const src = 'local fix, pcall0, xpcall0 = ...\n' +
    'pcall = function(...) return fix(pcall0(...)) end\n' +
    'xpcall = function(...) return fix(xpcall0(...)) end\n'
  if (lauxlib.luaL_loadstring(L, to_luastring(src)) !== 0) throw new Error('fengari pcall repair failed to load')
  lua.lua_insert(L, -4)
  lua.lua_call(L, 3, 0)
}

