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
import { installWasmAllocator } from './wasm-alloc.js'
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
/** First word of a userdata made by newuserdata(L, id); the id follows. */
const USERDATA_MAGIC = 0x64767068 // "dvph"
/** Registry refs as the BigInt lua_rawgeti takes: the small ones made once, not per push. */
const BIG_REFS: readonly bigint[] = Array.from({ length: 1024 }, (_, i) => BigInt(i))

// The raw emscripten module: exported C functions take and return numbers
// (pointers), 64-bit integers as BigInt.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = any

interface HostEntry {
  fn: HostFunction
  name: string
}

/**
 * Initialises wasmoon and returns its module plus the raw WebAssembly
 * exports. wasmoon's emscripten glue wraps every export in an assertion
 * shim (`function(){assert(...); return f.apply(null, arguments)}`) that
 * cost a third of the per-event time here; the raw exports are the same
 * functions without it. The glue keeps the instance private, so it is caught
 * as it is created. If that ever fails, the wrapped `module._*` are used.
 *
 * Its `invoke_vii` import (how emscripten runs every protected call: each
 * lua_resume and lua_pcall) goes through the same shims for stackSave and
 * stackRestore; it is replaced by the same function on the raw exports.
 */
async function initialize(): Promise<{ m: Raw; x: Raw }> {
  const original = WebAssembly.instantiate
  let exports: Raw
  const patched = async function (this: unknown, ...args: unknown[]) {
    const env = (args[1] as { env?: Record<string, unknown> } | undefined)?.env
    if (env !== undefined && typeof env.invoke_vii === 'function') {
      const glue = env.invoke_vii
      env.invoke_vii = (index: number, a1: number, a2: number): void => {
        if (exports === undefined) return (glue as (i: number, a: number, b: number) => void)(index, a1, a2)
        const sp = exports.stackSave()
        try {
          exports.__indirect_function_table.get(index)(a1, a2)
        } catch (e) {
          exports.stackRestore(sp)
          if (e !== (e as number) + 0) throw e // a JS exception, not emscripten's longjmp
          exports.setThrew(1, 0)
        }
      }
    }
    const result = await (original as (...a: unknown[]) => Promise<unknown>).apply(this, args)
    const instance = (result as { instance?: WebAssembly.Instance }).instance ?? (result as WebAssembly.Instance)
    if (instance?.exports && 'lua_newstate' in instance.exports) exports = instance.exports
    return result
  }
  WebAssembly.instantiate = patched as typeof WebAssembly.instantiate
  let wasm: LuaWasm
  try {
    wasm = await LuaWasm.initialize()
  } finally {
    WebAssembly.instantiate = original
  }
  const m: Raw = wasm.module
  const x: Raw = exports ?? new Proxy({}, { get: (_t, name: string) => m[`_${name}`] })
  return { m, x }
}

export async function createWasmoonEngine(): Promise<LuaEngine> {
  const { m, x } = await initialize()
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  const interned = new Map<string, number>()
  let scratch = x.malloc(SCRATCH_SIZE) as number
  const nresPtr = x.malloc(8) as number
  const lenPtr = x.malloc(8) as number

  const hosts = new Map<number, HostEntry>()
  let nextHostId = 1
  const freeHostIds: number[] = []

  /** A NUL-terminated copy of s in WASM memory: interned for keys, scratch otherwise. */
  const cstr = (s: string): number => {
    let p = interned.get(s)
    if (p !== undefined) return p
    const bytes = encoder.encode(s)
    if (interned.size < MAX_INTERNED_KEYS && bytes.length < 256) {
      p = x.malloc(bytes.length + 1) as number
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
      x.free(scratch)
      scratch = x.malloc(need)
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
    const id = x.lua_tonumberx(L, upvalueindex(1), 0) as number // a double: no BigInt per call
    const entry = hosts.get(id)
    if (entry === undefined) {
      pushJsString(L, 'dovepush: host function called after its state was closed')
      return x.lua_error(L)
    }
    try {
      return entry.fn(L)
    } catch (err) {
      if (err === Infinity) throw err // longjmp: a Lua error or yield in flight
      pushJsString(L, `dovepush internal error in ${entry.name}: ${err instanceof Error ? err.message : String(err)}`)
      return x.lua_error(L)
    }
  }, 'ii')

  // Most pushed strings are short ASCII (field names, mailboxes, addresses):
  // copy those byte by byte into the scratch buffer; TextEncoder.encode cost
  // a sixth of the per-event time when used for every string.
  const pushJsString = (L: number, s: string): void => {
    const n = s.length
    if (n < 1024) {
      const heap: Uint8Array = m.HEAPU8
      let i = 0
      for (; i < n; i++) {
        const c = s.charCodeAt(i)
        if (c > 0x7f) break
        heap[scratch + i] = c
      }
      if (i === n) {
        x.lua_pushlstring(L, scratch, n)
        return
      }
    }
    const bytes = encoder.encode(s)
    x.lua_pushlstring(L, scratchBytes(bytes, false), bytes.length)
  }

  // the allocator in WebAssembly (wasm-alloc.ts); JS's below only if that failed
  const wasmAlloc = 'memory' in x && '__indirect_function_table' in x ? installWasmAllocator(x) : undefined

  function newState(options: StateOptions = {}): LuaApi {
    const memoryLimit = Math.min(options.memoryLimit ?? 0, 0xffffffff)
    // The cap applies while script code runs (inside lua_resume), where a
    // failed allocation is a catchable "not enough memory" error. Outside it
    // (dovepush building a traceback or a table) a failure would be a Lua
    // panic, which aborts the whole WebAssembly module.
    // ud: u32 bytes in use, u32 limit, u32 enforcing (> 0 while script code runs)
    const ud = x.malloc(12) as number
    m.HEAPU32[ud >> 2] = 0
    m.HEAPU32[(ud >> 2) + 1] = memoryLimit
    m.HEAPU32[(ud >> 2) + 2] = 0
    const alloc = wasmAlloc ?? m.addFunction((u: number, ptr: number, osize: number, nsize: number): number => {
      const heap: Uint32Array = m.HEAPU32
      if (nsize === 0) {
        if (ptr !== 0) {
          heap[u >> 2] -= osize
          x.free(ptr)
        }
        return 0
      }
      const delta = ptr !== 0 ? nsize - osize : nsize
      if (heap[(u >> 2) + 2] > 0 && delta > 0 && heap[u >> 2] + delta > heap[(u >> 2) + 1]) return 0
      const np = x.realloc(ptr, nsize) as number
      if (np !== 0) m.HEAPU32[u >> 2] += delta
      return np
    }, 'iiiii')
    const releaseAlloc = (): void => {
      if (alloc !== wasmAlloc) m.removeFunction(alloc)
      x.free(ud)
    }
    const main = x.lua_newstate(alloc, ud) as number
    if (main === 0) {
      releaseAlloc()
      throw new Error('lua_newstate failed: not enough memory')
    }
    x.luaL_openlibs(main)
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
      get hostFunctions() {
        return ownHostIds.length
      },

      gettop: (L) => x.lua_gettop(L),
      settop: (L, idx) => x.lua_settop(L, idx),
      pop: (L, n) => x.lua_settop(L, -n - 1),
      pushvalue: (L, idx) => x.lua_pushvalue(L, idx),
      absindex: (L, idx) => x.lua_absindex(L, idx),
      insert: (L, idx) => x.lua_rotate(L, idx, 1),
      remove: (L, idx) => {
        x.lua_rotate(L, idx, -1)
        x.lua_settop(L, -2)
      },
      xmove: (from, to, n) => x.lua_xmove(from, to, n),
      checkstack: (L, n) => x.lua_checkstack(L, n) !== 0,

      pushnil: (L) => x.lua_pushnil(L),
      pushboolean: (L, b) => x.lua_pushboolean(L, b ? 1 : 0),
      pushnumber: (L, n) => x.lua_pushnumber(L, n),
      pushinteger: (L, n) => x.lua_pushinteger(L, BigInt(n)),
      pushstring: (L, s) => pushJsString(L as number, s),
      pushbytes: (L, b) => {
        x.lua_pushlstring(L, scratchBytes(b, false), b.length)
      },
      pushfunction: (L, fn, name) => {
        const id = freeHostIds.pop() ?? nextHostId++
        hosts.set(id, { fn, name })
        ownHostIds.push(id)
        x.lua_pushinteger(L, BigInt(id))
        x.lua_pushcclosure(L, dispatcher, 1)
      },
      newuserdata: (L, id) => {
        const p = x.lua_newuserdatauv(L, id === undefined ? 0 : 8, 0) as number
        if (id !== undefined) {
          m.HEAPU32[p >> 2] = USERDATA_MAGIC
          m.HEAPU32[(p >> 2) + 1] = id
        }
      },
      userdataid: (L, idx) => {
        if (x.lua_type(L, idx) !== LuaType.USERDATA) return undefined
        const p = x.lua_touserdata(L, idx) as number
        // [magic, id]: cheaper than asking lua_rawlen (a BigInt) for the size.
        // A block without an id may happen to start with the magic; callers
        // that must be sure also check the metatable (objects.ts does).
        return m.HEAPU32[p >> 2] === USERDATA_MAGIC ? m.HEAPU32[(p >> 2) + 1] : undefined
      },

      createtable: (L, narr, nrec) => x.lua_createtable(L, narr, nrec),
      setfield: (L, idx, k) => x.lua_setfield(L, idx, cstr(k)),
      getfield: (L, idx, k) => x.lua_getfield(L, idx, cstr(k)) as LuaTypeTag,
      rawsetfield: (L, idx, k) => {
        const t = x.lua_absindex(L, idx)
        pushJsString(L as number, k)
        x.lua_rotate(L, -2, 1)
        x.lua_rawset(L, t)
      },
      rawgetfield: (L, idx, k) => {
        // keys are short and few (field names): interned, and the index
        // adjusted for the pushed key instead of a lua_absindex call
        x.lua_pushstring(L, cstr(k))
        return x.lua_rawget(L, idx < 0 && idx > REGISTRYINDEX ? idx - 1 : idx) as LuaTypeTag
      },
      rawset: (L, idx) => x.lua_rawset(L, idx),
      rawget: (L, idx) => x.lua_rawget(L, idx) as LuaTypeTag,
      rawseti: (L, idx, i) => x.lua_rawseti(L, idx, BigInt(i)),
      rawgeti: (L, idx, i) => x.lua_rawgeti(L, idx, BigInt(i)) as LuaTypeTag,
      settable: (L, idx) => x.lua_settable(L, idx),
      gettable: (L, idx) => x.lua_gettable(L, idx) as LuaTypeTag,
      setmetatable: (L, idx) => {
        x.lua_setmetatable(L, idx)
      },
      getmetatable: (L, idx) => x.lua_getmetatable(L, idx) !== 0,
      getglobal: (L, name) => x.lua_getglobal(L, cstr(name)) as LuaTypeTag,
      setglobal: (L, name) => x.lua_setglobal(L, cstr(name)),
      next: (L, idx) => x.lua_next(L, idx) !== 0,

      type: (L, idx) => x.lua_type(L, idx) as LuaTypeTag,
      typename: (L, tag) => readCString(x.lua_typename(L, tag)),
      tonumber: (L, idx) => x.lua_tonumberx(L, idx, 0),
      isnumber: (L, idx) => x.lua_isnumber(L, idx) !== 0,
      isinteger: (L, idx) => x.lua_isinteger(L, idx) !== 0,
      tointeger: (L, idx) => {
        const v = x.lua_tointegerx(L, idx, lenPtr) as bigint
        if (m.HEAP32[lenPtr >> 2] === 0) return undefined
        return Number(v)
      },
      toboolean: (L, idx) => x.lua_toboolean(L, idx) !== 0,
      tostring: (L, idx) => {
        const t = x.lua_type(L, idx)
        if (t === LuaType.STRING) {
          const p = x.lua_tolstring(L, idx, lenPtr) as number
          return readString(p, m.HEAPU32[lenPtr >> 2])
        }
        if (t === LuaType.NUMBER) {
          x.lua_pushvalue(L, idx) // lua_tolstring converts in place: use a copy
          const p = x.lua_tolstring(L, -1, lenPtr) as number
          const s = readString(p, m.HEAPU32[lenPtr >> 2])
          x.lua_settop(L, -2)
          return s
        }
        return undefined
      },
      tobytes: (L, idx) => {
        const t = x.lua_type(L, idx)
        if (t !== LuaType.STRING && t !== LuaType.NUMBER) return undefined
        x.lua_pushvalue(L, idx)
        const p = x.lua_tolstring(L, -1, lenPtr) as number
        const b = readBytes(p, m.HEAPU32[lenPtr >> 2])
        x.lua_settop(L, -2)
        return b
      },
      tostringmeta: (L, idx) => {
        const p = x.luaL_tolstring(L, idx, lenPtr) as number
        const s = readString(p, m.HEAPU32[lenPtr >> 2])
        x.lua_settop(L, -2)
        return s
      },
      rawlen: (L, idx) => Number(x.lua_rawlen(L, idx)), // lua_Unsigned: a BigInt
      rawequal: (L, a, b) => x.lua_rawequal(L, a, b) !== 0,
      tothread: (L, idx) => {
        const t = x.lua_tothread(L, idx) as number
        return t === 0 ? undefined : (t as LuaThread)
      },
      topointer: (L, idx) => x.lua_topointer(L, idx) as number,

      ref: (L) => x.luaL_ref(L, REGISTRYINDEX),
      unref: (L, ref) => x.luaL_unref(L, REGISTRYINDEX, ref),
      pushref: (L, ref) => {
        x.lua_rawgeti(L, REGISTRYINDEX, BIG_REFS[ref] ?? BigInt(ref)) // LUA_REFNIL is -1
      },

      error: (L) => {
        x.lua_error(L)
        throw new Error('unreachable: lua_error returned')
      },
      raise: (L, msg) => {
        x.luaL_where(L, 1)
        pushJsString(L as number, msg)
        x.lua_concat(L, 2)
        x.lua_error(L)
        throw new Error('unreachable: lua_error returned')
      },
      argerror: (L, arg, extramsg) => {
        const bytes = encoder.encode(extramsg)
        const p = x.malloc(bytes.length + 1) as number
        m.HEAPU8.set(bytes, p)
        m.HEAPU8[p + bytes.length] = 0
        // luaL_argerror copies the message before it raises; the block leaks only if it never returns (it never does)
        try {
          x.luaL_argerror(L, arg, p)
        } finally {
          x.free(p)
        }
        throw new Error('unreachable: luaL_argerror returned')
      },
      typeerror: (L, arg, tname) => {
        x.luaL_typeerror(L, arg, cstr(tname))
        throw new Error('unreachable: luaL_typeerror returned')
      },
      where: (L, level) => {
        x.luaL_where(L, level)
        const p = x.lua_tolstring(L, -1, lenPtr) as number
        const s = readString(p, m.HEAPU32[lenPtr >> 2])
        x.lua_settop(L, -2)
        return s
      },
      traceback: (L, L1, msg, level) => {
        if (msg === undefined) {
          x.luaL_traceback(L, L1, 0, level)
        } else {
          const bytes = encoder.encode(msg)
          const p = x.malloc(bytes.length + 1) as number
          m.HEAPU8.set(bytes, p)
          m.HEAPU8[p + bytes.length] = 0
          try {
            x.luaL_traceback(L, L1, p, level)
          } finally {
            x.free(p)
          }
        }
      },

      newthread: (L) => x.lua_newthread(L) as LuaThread,
      resume: (L, from, nargs) => {
        if (memoryLimit > 0) m.HEAPU32[(ud >> 2) + 2]++
        let st: number
        try {
          st = x.lua_resume(L, from ?? 0, nargs, nresPtr) as number
        } finally {
          if (memoryLimit > 0) m.HEAPU32[(ud >> 2) + 2]--
        }
        lastResults = m.HEAP32[nresPtr >> 2]
        return st
      },
      resetthread: (L) => x.lua_resetthread(L) === 0,
      status: (L) => x.lua_status(L),
      isyieldable: (L) => x.lua_isyieldable(L) !== 0,
      yield: (L, n) => x.lua_yieldk(L, n, 0, 0),
      load: (L, chunk, chunkname, mode = 'bt') => {
        const p = x.malloc(chunk.length + 1) as number
        m.HEAPU8.set(chunk, p)
        try {
          return x.luaL_loadbufferx(L, p, chunk.length, cstr(chunkname), cstr(mode))
        } finally {
          x.free(p)
        }
      },
      pcall: (L, nargs, nresults, msgh) => x.lua_pcallk(L, nargs, nresults, msgh, 0, 0),
      call: (L, nargs, nresults) => x.lua_callk(L, nargs, nresults, 0, 0),

      sethook: (L, fn, count) => {
        hook = fn
        if (fn === null) {
          x.lua_sethook(L, 0, 0, 0)
          return
        }
        if (hookPtr === 0) {
          hookPtr = m.addFunction((HL: number) => {
            hook?.(HL as LuaThread)
          }, 'vii')
        }
        x.lua_sethook(L, hookPtr, LUA_MASKCOUNT, count)
      },

      memoryUsed: () => m.HEAPU32[ud >> 2],
      close: () => {
        if (closed) return
        closed = true
        x.lua_close(main)
        for (const id of ownHostIds) {
          hosts.delete(id)
          freeHostIds.push(id)
        }
        releaseAlloc()
        if (hookPtr !== 0) m.removeFunction(hookPtr)
      },
    }
    return api
  }

  return { name: 'wasmoon', allocator: wasmAlloc !== undefined ? 'wasm' : 'js', newState }
}
