// The wasmoon engine: real Lua 5.4 compiled to WebAssembly (the default).
//
// wasmoon's own JS layer (Global/Thread, `global.get(fn)(...)`) manages about
// 110k calls/s here; the raw exported C functions (`module._lua_*`) with
// strings passed as pointers reach ~1.3M/s (measured on this machine, Node
// 20). So this file uses only `LuaWasm.initialize()` and the raw exports.
// Strings used as keys are interned in WASM memory once; other strings go
// through a scratch buffer. Memory is tracked per state by our own allocator,
// as wasmoon's `traceAllocations` does, so each state can have a cap.
//
// A Lua error or yield raised from JS (lua_error, lua_yield, a hook) unwinds
// with emscripten's longjmp, which throws `Infinity` through our JS frames:
// never swallow it.

import { LuaWasm } from 'wasmoon'
import {
  type HostFunction,
  type LuaApi,
  type LuaEngine,
  type LuaThread,
  type LuaTypeTag,
  LuaType,
  type StateOptions,
} from './engine.js'

const LUAI_MAXSTACK = 1_000_000
const REGISTRYINDEX = -LUAI_MAXSTACK - 1000
const upvalueindex = (i: number): number => REGISTRYINDEX - i
const LUA_MASKCOUNT = 1 << 3
const SCRATCH_SIZE = 64 * 1024
const MAX_INTERNED_KEYS = 4096

// The raw emscripten module: exported C functions take and return numbers
// (pointers), 64-bit integers as BigInt.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = any

interface HostEntry {
  fn: HostFunction
  name: string
}

export async function createWasmoonEngine(): Promise<LuaEngine> {
  const wasm = await LuaWasm.initialize()
  const m: Raw = wasm.module
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  const interned = new Map<string, number>()
  let scratch = m._malloc(SCRATCH_SIZE) as number
  const nresPtr = m._malloc(8) as number
  const lenPtr = m._malloc(8) as number

  const hosts = new Map<number, HostEntry>()
  let nextHostId = 1
  const freeHostIds: number[] = []

  /** A NUL-terminated copy of s in WASM memory: interned for keys, scratch otherwise. */
  const cstr = (s: string): number => {
    let p = interned.get(s)
    if (p !== undefined) return p
    const bytes = encoder.encode(s)
    if (interned.size < MAX_INTERNED_KEYS && bytes.length < 256) {
      p = m._malloc(bytes.length + 1) as number
      m.HEAPU8.set(bytes, p)
      m.HEAPU8[p + bytes.length] = 0
      interned.set(s, p)
      return p
    }
    return scratchBytes(bytes, true)
  }

  /** Copies bytes into the scratch buffer (grown when needed) and returns its address. */
  const scratchBytes = (bytes: Uint8Array, nul: boolean): number => {
    const need = bytes.length + 1
    if (need > SCRATCH_SIZE) {
      // large values get their own block; callers copy before the next use
      m._free(scratch)
      scratch = m._malloc(need)
    }
    m.HEAPU8.set(bytes, scratch)
    if (nul) m.HEAPU8[scratch + bytes.length] = 0
    return scratch
  }

  const readBytes = (p: number, len: number): Uint8Array => m.HEAPU8.slice(p, p + len)
  const readString = (p: number, len: number): string => decoder.decode(m.HEAPU8.subarray(p, p + len))
  const readCString = (p: number): string => {
    const heap: Uint8Array = m.HEAPU8
    let end = p
    while (heap[end] !== 0) end++
    return decoder.decode(heap.subarray(p, end))
  }

  // One dispatcher for every host function: upvalue 1 is the host id.
  const dispatcher = m.addFunction((L: number): number => {
    const id = Number(m._lua_tointegerx(L, upvalueindex(1), 0))
    const entry = hosts.get(id)
    if (entry === undefined) {
      pushJsString(L, 'dovepush: host function called after its state was closed')
      return m._lua_error(L)
    }
    try {
      return entry.fn(L)
    } catch (err) {
      if (err === Infinity) throw err // longjmp: a Lua error or yield in flight
      pushJsString(L, `dovepush internal error in ${entry.name}: ${err instanceof Error ? err.message : String(err)}`)
      return m._lua_error(L)
    }
  }, 'ii')

  const pushJsString = (L: number, s: string): void => {
    const bytes = encoder.encode(s)
    m._lua_pushlstring(L, scratchBytes(bytes, false), bytes.length)
  }

  function newState(options: StateOptions = {}): LuaApi {
    let memoryUsed = 0
    const memoryLimit = options.memoryLimit ?? 0
    const alloc = m.addFunction((_ud: number, ptr: number, osize: number, nsize: number): number => {
      if (nsize === 0) {
        if (ptr !== 0) {
          memoryUsed -= osize
          m._free(ptr)
        }
        return 0
      }
      const delta = ptr !== 0 ? nsize - osize : nsize
      if (memoryLimit > 0 && delta > 0 && memoryUsed + delta > memoryLimit) return 0
      const np = m._realloc(ptr, nsize) as number
      if (np !== 0) memoryUsed += delta
      return np
    }, 'iiiii')
    const main = m._lua_newstate(alloc, 0) as number
    if (main === 0) {
      m.removeFunction(alloc)
      throw new Error('lua_newstate failed: not enough memory')
    }
    m._luaL_openlibs(main)
    const ownHostIds: number[] = []
    let hook: ((L: LuaThread) => void) | null = null
    let hookPtr = 0
    let lastResults = 0
    let closed = false

    const api: LuaApi = {
      engine: 'wasmoon',
      version: 'Lua 5.4',
      integerBits: 64,
      REGISTRYINDEX,
      main: main as LuaThread,
      get lastResults() {
        return lastResults
      },

      gettop: (L) => m._lua_gettop(L),
      settop: (L, idx) => m._lua_settop(L, idx),
      pop: (L, n) => m._lua_settop(L, -n - 1),
      pushvalue: (L, idx) => m._lua_pushvalue(L, idx),
      absindex: (L, idx) => m._lua_absindex(L, idx),
      insert: (L, idx) => m._lua_rotate(L, idx, 1),
      remove: (L, idx) => {
        m._lua_rotate(L, idx, -1)
        m._lua_settop(L, -2)
      },
      xmove: (from, to, n) => m._lua_xmove(from, to, n),
      checkstack: (L, n) => m._lua_checkstack(L, n) !== 0,

      pushnil: (L) => m._lua_pushnil(L),
      pushboolean: (L, b) => m._lua_pushboolean(L, b ? 1 : 0),
      pushnumber: (L, n) => m._lua_pushnumber(L, n),
      pushinteger: (L, n) => m._lua_pushinteger(L, BigInt(n)),
      pushstring: (L, s) => pushJsString(L as number, s),
      pushbytes: (L, b) => {
        m._lua_pushlstring(L, scratchBytes(b, false), b.length)
      },
      pushfunction: (L, fn, name) => {
        const id = freeHostIds.pop() ?? nextHostId++
        hosts.set(id, { fn, name })
        ownHostIds.push(id)
        m._lua_pushinteger(L, BigInt(id))
        m._lua_pushcclosure(L, dispatcher, 1)
      },
      newuserdata: (L) => {
        m._lua_newuserdatauv(L, 0, 0)
      },

      createtable: (L, narr, nrec) => m._lua_createtable(L, narr, nrec),
      setfield: (L, idx, k) => m._lua_setfield(L, idx, cstr(k)),
      getfield: (L, idx, k) => m._lua_getfield(L, idx, cstr(k)) as LuaTypeTag,
      rawsetfield: (L, idx, k) => {
        const t = m._lua_absindex(L, idx)
        pushJsString(L as number, k)
        m._lua_rotate(L, -2, 1)
        m._lua_rawset(L, t)
      },
      rawgetfield: (L, idx, k) => {
        const t = m._lua_absindex(L, idx)
        pushJsString(L as number, k)
        return m._lua_rawget(L, t) as LuaTypeTag
      },
      rawset: (L, idx) => m._lua_rawset(L, idx),
      rawget: (L, idx) => m._lua_rawget(L, idx) as LuaTypeTag,
      rawseti: (L, idx, i) => m._lua_rawseti(L, idx, BigInt(i)),
      rawgeti: (L, idx, i) => m._lua_rawgeti(L, idx, BigInt(i)) as LuaTypeTag,
      settable: (L, idx) => m._lua_settable(L, idx),
      gettable: (L, idx) => m._lua_gettable(L, idx) as LuaTypeTag,
      setmetatable: (L, idx) => {
        m._lua_setmetatable(L, idx)
      },
      getmetatable: (L, idx) => m._lua_getmetatable(L, idx) !== 0,
      getglobal: (L, name) => m._lua_getglobal(L, cstr(name)) as LuaTypeTag,
      setglobal: (L, name) => m._lua_setglobal(L, cstr(name)),
      next: (L, idx) => m._lua_next(L, idx) !== 0,

      type: (L, idx) => m._lua_type(L, idx) as LuaTypeTag,
      typename: (L, tag) => readCString(m._lua_typename(L, tag)),
      tonumber: (L, idx) => m._lua_tonumberx(L, idx, 0),
      isnumber: (L, idx) => m._lua_isnumber(L, idx) !== 0,
      isinteger: (L, idx) => m._lua_isinteger(L, idx) !== 0,
      tointeger: (L, idx) => {
        const v = m._lua_tointegerx(L, idx, lenPtr) as bigint
        if (m.HEAP32[lenPtr >> 2] === 0) return undefined
        return Number(v)
      },
      toboolean: (L, idx) => m._lua_toboolean(L, idx) !== 0,
      tostring: (L, idx) => {
        const t = m._lua_type(L, idx)
        if (t === LuaType.STRING) {
          const p = m._lua_tolstring(L, idx, lenPtr) as number
          return readString(p, m.HEAPU32[lenPtr >> 2])
        }
        if (t === LuaType.NUMBER) {
          m._lua_pushvalue(L, idx) // lua_tolstring converts in place: use a copy
          const p = m._lua_tolstring(L, -1, lenPtr) as number
          const s = readString(p, m.HEAPU32[lenPtr >> 2])
          m._lua_settop(L, -2)
          return s
        }
        return undefined
      },
      tobytes: (L, idx) => {
        const t = m._lua_type(L, idx)
        if (t !== LuaType.STRING && t !== LuaType.NUMBER) return undefined
        m._lua_pushvalue(L, idx)
        const p = m._lua_tolstring(L, -1, lenPtr) as number
        const b = readBytes(p, m.HEAPU32[lenPtr >> 2])
        m._lua_settop(L, -2)
        return b
      },
      tostringmeta: (L, idx) => {
        const p = m._luaL_tolstring(L, idx, lenPtr) as number
        const s = readString(p, m.HEAPU32[lenPtr >> 2])
        m._lua_settop(L, -2)
        return s
      },
      rawlen: (L, idx) => Number(m._lua_rawlen(L, idx)), // lua_Unsigned: a BigInt
      rawequal: (L, a, b) => m._lua_rawequal(L, a, b) !== 0,
      tothread: (L, idx) => {
        const t = m._lua_tothread(L, idx) as number
        return t === 0 ? undefined : (t as LuaThread)
      },
      topointer: (L, idx) => m._lua_topointer(L, idx) as number,

      ref: (L) => m._luaL_ref(L, REGISTRYINDEX),
      unref: (L, ref) => m._luaL_unref(L, REGISTRYINDEX, ref),
      pushref: (L, ref) => {
        m._lua_rawgeti(L, REGISTRYINDEX, BigInt(ref))
      },

      error: (L) => {
        m._lua_error(L)
        throw new Error('unreachable: lua_error returned')
      },
      raise: (L, msg) => {
        m._luaL_where(L, 1)
        pushJsString(L as number, msg)
        m._lua_concat(L, 2)
        m._lua_error(L)
        throw new Error('unreachable: lua_error returned')
      },
      argerror: (L, arg, extramsg) => {
        const bytes = encoder.encode(extramsg)
        const p = m._malloc(bytes.length + 1) as number
        m.HEAPU8.set(bytes, p)
        m.HEAPU8[p + bytes.length] = 0
        // luaL_argerror copies the message before it raises; the block leaks only if it never returns (it never does)
        try {
          m._luaL_argerror(L, arg, p)
        } finally {
          m._free(p)
        }
        throw new Error('unreachable: luaL_argerror returned')
      },
      typeerror: (L, arg, tname) => {
        m._luaL_typeerror(L, arg, cstr(tname))
        throw new Error('unreachable: luaL_typeerror returned')
      },
      where: (L, level) => {
        m._luaL_where(L, level)
        const p = m._lua_tolstring(L, -1, lenPtr) as number
        const s = readString(p, m.HEAPU32[lenPtr >> 2])
        m._lua_settop(L, -2)
        return s
      },
      traceback: (L, L1, msg, level) => {
        if (msg === undefined) {
          m._luaL_traceback(L, L1, 0, level)
        } else {
          const bytes = encoder.encode(msg)
          const p = m._malloc(bytes.length + 1) as number
          m.HEAPU8.set(bytes, p)
          m.HEAPU8[p + bytes.length] = 0
          try {
            m._luaL_traceback(L, L1, p, level)
          } finally {
            m._free(p)
          }
        }
      },

      newthread: (L) => m._lua_newthread(L) as LuaThread,
      resume: (L, from, nargs) => {
        const st = m._lua_resume(L, from ?? 0, nargs, nresPtr) as number
        lastResults = m.HEAP32[nresPtr >> 2]
        return st
      },
      resetthread: (L) => m._lua_resetthread(L) === 0,
      status: (L) => m._lua_status(L),
      isyieldable: (L) => m._lua_isyieldable(L) !== 0,
      yield: (L, n) => m._lua_yieldk(L, n, 0, 0),
      load: (L, chunk, chunkname, mode = 'bt') => {
        const p = m._malloc(chunk.length + 1) as number
        m.HEAPU8.set(chunk, p)
        try {
          return m._luaL_loadbufferx(L, p, chunk.length, cstr(chunkname), cstr(mode))
        } finally {
          m._free(p)
        }
      },
      pcall: (L, nargs, nresults, msgh) => m._lua_pcallk(L, nargs, nresults, msgh, 0, 0),
      call: (L, nargs, nresults) => m._lua_callk(L, nargs, nresults, 0, 0),

      sethook: (L, fn, count) => {
        hook = fn
        if (fn === null) {
          m._lua_sethook(L, 0, 0, 0)
          return
        }
        if (hookPtr === 0) {
          hookPtr = m.addFunction((HL: number) => {
            hook?.(HL as LuaThread)
          }, 'vii')
        }
        m._lua_sethook(L, hookPtr, LUA_MASKCOUNT, count)
      },

      memoryUsed: () => memoryUsed,
      close: () => {
        if (closed) return
        closed = true
        m._lua_close(main)
        for (const id of ownHostIds) {
          hosts.delete(id)
          freeHostIds.push(id)
        }
        m.removeFunction(alloc)
        if (hookPtr !== 0) m.removeFunction(hookPtr)
      },
    }
    return api
  }

  return { name: 'wasmoon', newState }
}
