// The same checks on both engines: the engine interface must behave like the
// Lua C API on wasmoon (Lua 5.4) and fengari (Lua 5.3, 32-bit integers).

import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  createEngine,
  type LuaApi,
  type LuaEngine,
  LuaStatus,
  type LuaThread,
  LuaType,
} from '../../src/lua/engine.js'

const encoder = new TextEncoder()

/** Loads and runs `code` on the main thread; returns the number of results left on the stack. */
function run(api: LuaApi, code: string, chunkname = '=test'): number {
  const L = api.main
  const base = api.gettop(L)
  const st = api.load(L, encoder.encode(code), chunkname, 't')
  if (st !== LuaStatus.OK) throw new Error(`load: ${api.tostring(L, -1)}`)
  const pst = api.pcall(L, 0, -1, 0)
  if (pst !== LuaStatus.OK) throw new Error(`pcall: ${api.tostring(L, -1)}`)
  return api.gettop(L) - base
}

for (const name of ['wasmoon', 'fengari'] as const) {
  describe(`${name} engine`, () => {
    let engine: LuaEngine
    let api: LuaApi
    let L: LuaThread

    beforeAll(async () => {
      engine = await createEngine(name)
    })
    beforeEach(() => {
      api = engine.newState()
      L = api.main
    })
    afterEach(() => {
      api.close()
    })

    it('describes itself', () => {
      expect(api.engine).toBe(name)
      expect(api.version).toBe(name === 'fengari' ? 'Lua 5.3' : 'Lua 5.4')
      expect(api.integerBits).toBe(name === 'fengari' ? 32 : 64)
      expect(run(api, 'return _VERSION')).toBe(1)
      expect(api.tostring(L, -1)).toBe(api.version)
    })

    it('pushes typed values that Lua sees with the right types', () => {
      api.createtable(L, 0, 5)
      api.pushnumber(L, 1.5)
      api.setfield(L, -2, 'f')
      api.pushnumber(L, 3) // integral, but a float
      api.setfield(L, -2, 'g')
      api.pushinteger(L, 42)
      api.setfield(L, -2, 'i')
      api.pushstring(L, 'héllo')
      api.setfield(L, -2, 's')
      api.pushboolean(L, true)
      api.rawsetfield(L, -2, 'b')
      api.setglobal(L, 't')
      expect(api.gettop(L)).toBe(0)

      const n = run(
        api,
        `assert(math.type(t.f) == "float" and t.f == 1.5)
         assert(math.type(t.g) == "float" and tostring(t.g) == "3.0")
         assert(math.type(t.i) == "integer" and t.i == 42)
         assert(type(t.s) == "string" and t.s == "h\\xc3\\xa9llo" and #t.s == 6)
         assert(t.b == true)
         return t.s .. "|" .. t.i .. "|" .. t.g, t.i, t.f`,
      )
      expect(n).toBe(3)
      expect(api.tostring(L, 1)).toBe('héllo|42|3.0')
      expect(api.isinteger(L, 2)).toBe(true)
      expect(api.tointeger(L, 2)).toBe(42)
      expect(api.isinteger(L, 3)).toBe(false)
      expect(api.tointeger(L, 3)).toBeUndefined()
      expect(api.tonumber(L, 3)).toBe(1.5)
      // tostring of a number does not convert it in place
      expect(api.tostring(L, 2)).toBe('42')
      expect(api.type(L, 2)).toBe(LuaType.NUMBER)
      expect(api.gettop(L)).toBe(3)
      api.settop(L, 0)

      api.getglobal(L, 't')
      expect(api.rawgetfield(L, 1, 'b')).toBe(LuaType.BOOLEAN)
      expect(api.toboolean(L, -1)).toBe(true)
      api.pop(L, 1)
      expect(api.getfield(L, 1, 'missing')).toBe(LuaType.NIL)
      expect(api.typename(L, api.type(L, 1))).toBe('table')
      api.settop(L, 0)
    })

    it('calls host functions: multiple results, raise, JS exceptions', () => {
      api.pushfunction(L, (HL) => {
        const x = api.tointeger(HL, 1) ?? 0
        api.pushinteger(HL, x * 2)
        api.pushstring(HL, 'two')
        return 2
      }, 'pair')
      api.setglobal(L, 'pair')
      api.pushfunction(L, (HL) => api.raise(HL, 'boom'), 'fail')
      api.setglobal(L, 'fail')
      api.pushfunction(L, () => {
        throw new Error('oops')
      }, 'thrower')
      api.setglobal(L, 'thrower')

      const n = run(
        api,
        `local a, b = pair(21)
         local ok1, e1 = pcall(fail)
         local ok2, e2 = pcall(function()
           fail()
         end)
         local ok3, e3 = pcall(thrower)
         return a, b, ok1, e1, ok2, e2, ok3, e3`,
        '@host.lua',
      )
      expect(n).toBe(8)
      expect(api.tointeger(L, 1)).toBe(42)
      expect(api.isinteger(L, 1)).toBe(true)
      expect(api.tostring(L, 2)).toBe('two')
      expect(api.toboolean(L, 3)).toBe(false)
      // luaL_where(L, 1) is the caller of the host function: pcall, a C function: no prefix
      expect(api.tostring(L, 4)).toBe('boom')
      expect(api.toboolean(L, 5)).toBe(false)
      // called from Lua code: the caller's position
      expect(api.tostring(L, 6)).toBe('host.lua:4: boom')
      expect(api.toboolean(L, 7)).toBe(false)
      expect(api.tostring(L, 8)).toBe('dovepush internal error in thrower: oops')
      api.settop(L, 0)

      // the same host error through the API's pcall
      api.getglobal(L, 'fail')
      expect(api.pcall(L, 0, 0, 0)).toBe(LuaStatus.ERRRUN)
      expect(api.tostring(L, -1)).toBe('boom')
      api.settop(L, 0)
    })

    it('raises argument errors with Lua naming rules', () => {
      api.pushfunction(L, (HL) => {
        if (api.type(HL, 1) !== LuaType.NUMBER) api.typeerror(HL, 1, 'number')
        return 0
      }, 'check')
      api.setglobal(L, 'check')
      api.pushfunction(L, (HL) => api.argerror(HL, 2, 'not good'), 'meth')
      api.setglobal(L, 'meth')
      api.newuserdata(L)
      api.createtable(L, 0, 1)
      api.pushstring(L, 'my.type')
      api.setfield(L, -2, '__name')
      api.setmetatable(L, -2)
      api.setglobal(L, 'ud')

      const n = run(
        api,
        `local obj = { meth = meth }
         local _, e1 = pcall(function()
           check(nil)
         end)
         local _, e2 = pcall(function()
           obj:meth(5)
         end)
         local _, e3 = pcall(function()
           check(ud)
         end)
         local _, e4 = pcall(check, "x")
         local ok = pcall(check, 1)
         return e1, e2, e3, e4, ok`,
        '@arg.lua',
      )
      expect(n).toBe(5)
      expect(api.tostring(L, 1)).toBe("arg.lua:3: bad argument #1 to 'check' (number expected, got nil)")
      expect(api.tostring(L, 2)).toBe("arg.lua:6: bad argument #1 to 'meth' (not good)")
      expect(api.tostring(L, 3)).toBe("arg.lua:9: bad argument #1 to 'check' (number expected, got my.type)")
      expect(api.tostring(L, 4)).toBe("bad argument #1 to 'check' (number expected, got string)")
      expect(api.toboolean(L, 5)).toBe(true)
      api.settop(L, 0)
    })

    it('lets a host function yield inside pcall and resumes it with a value', () => {
      let yieldable: boolean | undefined
      api.pushfunction(L, (HL) => {
        yieldable = api.isyieldable(HL)
        api.pushstring(HL, 'marker')
        return api.yield(HL, 1)
      }, 'wait')
      api.setglobal(L, 'wait')

      const T = api.newthread(L)
      expect(api.type(L, -1)).toBe(LuaType.THREAD)
      expect(api.tothread(L, -1)).toBe(T)
      const ref = api.ref(L) // keep the thread alive
      expect(api.gettop(L)).toBe(0)
      expect(api.gettop(T)).toBe(0)

      const code = `local function f(x)
          local ok, v = pcall(wait, x)
          return ok, v, "done"
        end
        return f("arg")`
      expect(api.load(T, encoder.encode(code), '=yield')).toBe(LuaStatus.OK)
      expect(api.resume(T, L, 0)).toBe(LuaStatus.YIELD)
      expect(yieldable).toBe(true)
      expect(api.status(T)).toBe(LuaStatus.YIELD)
      expect(api.lastResults).toBe(1)
      expect(api.tostring(T, -1)).toBe('marker')
      // The yielded values are the top lastResults values. Lua 5.3 (fengari)
      // hides the yielding function's frame below them; Lua 5.4 does not
      // (lua_yieldk no longer moves ci->func), so its argument "arg" is still there.
      expect(api.gettop(T)).toBe(name === 'fengari' ? 1 : 2)

      api.pop(T, api.lastResults) // remove the yielded values, push the host function's results
      api.pushinteger(T, 99)
      expect(api.resume(T, L, 1)).toBe(LuaStatus.OK)
      expect(api.status(T)).toBe(LuaStatus.OK)
      expect(api.lastResults).toBe(3)
      expect(api.gettop(T)).toBe(3)
      expect(api.toboolean(T, 1)).toBe(true)
      expect(api.tointeger(T, 2)).toBe(99)
      expect(api.tostring(T, 3)).toBe('done')
      api.settop(T, 0)
      api.unref(L, ref)

      // not yieldable on the main thread
      let mainYieldable: boolean | undefined
      api.pushfunction(L, (HL) => {
        mainYieldable = api.isyieldable(HL)
        return 0
      }, 'probe')
      expect(api.pcall(L, 0, 0, 0)).toBe(LuaStatus.OK)
      expect(mainYieldable).toBe(false)
    })

    it('round-trips binary strings', () => {
      const bytes = new Uint8Array([0x00, 0xff, 0x41])
      api.pushbytes(L, bytes)
      bytes[2] = 0x42 // Lua holds its own copy
      const out = api.tobytes(L, -1)
      expect(out).toEqual(new Uint8Array([0x00, 0xff, 0x41]))
      expect(api.rawlen(L, -1)).toBe(3)
      expect(api.tostring(L, -1)).toBe('\u0000\ufffdA') // non-fatal UTF-8 decoding
      api.setglobal(L, 's')
      expect(run(api, 'return #s == 3 and s:byte(1) == 0 and s:byte(2) == 255 and s == "\\0\\255A", #s')).toBe(2)
      expect(api.toboolean(L, 1)).toBe(true)
      expect(api.tointeger(L, 2)).toBe(3)
      // tobytes of a number: its string form, without converting in place
      expect(api.tobytes(L, 2)).toEqual(encoder.encode('3'))
      expect(api.type(L, 2)).toBe(LuaType.NUMBER)
      expect(api.tobytes(L, 1)).toBeUndefined()
      api.settop(L, 0)
    })

    it('stops a runaway loop with a count hook', () => {
      const T = api.newthread(L)
      let calls = 0
      api.sethook(T, (HL) => {
        calls++
        if (calls >= 5) api.raise(HL, 'too long')
      }, 1000)
      expect(api.load(T, encoder.encode('local n = 0\nwhile true do n = n + 1 end'), '@loop.lua')).toBe(LuaStatus.OK)
      expect(api.resume(T, L, 0)).toBe(LuaStatus.ERRRUN)
      expect(calls).toBe(5)
      // luaL_where(L, 1) in a count hook: level 0 is the running chunk, level 1 does not exist
      expect(api.tostring(T, -1)).toBe('too long')
      expect(api.where(T, 0)).toBe('loop.lua:2: ')
      expect(api.status(T)).toBe(LuaStatus.ERRRUN)
    })

    it('threads inherit the hook of the thread that creates them', () => {
      let calls = 0
      api.sethook(L, (HL) => {
        calls++
        api.raise(HL, 'stopped')
      }, 1000)
      const T = api.newthread(L)
      expect(api.load(T, encoder.encode('while true do end'), '=inherit')).toBe(LuaStatus.OK)
      expect(api.resume(T, L, 0)).toBe(LuaStatus.ERRRUN)
      expect(calls).toBe(1)
      expect(api.tostring(T, -1)).toBe('stopped')
      // (not checked: removing L's hook afterwards, which on wasmoon also
      // disables T's inherited hook: wasmoon keeps one hook function per state)
      api.sethook(L, null, 0)
    })

    it('reports an error in a resumed thread with a traceback', () => {
      const T = api.newthread(L)
      const code = `local function inner()
          error("bad thing")
        end
        local function outer()
          inner()
        end
        outer()`
      expect(api.load(T, encoder.encode(code), '@err.lua')).toBe(LuaStatus.OK)
      expect(api.resume(T, L, 0)).toBe(LuaStatus.ERRRUN)
      expect(api.status(T)).toBe(LuaStatus.ERRRUN)
      const msg = api.tostring(T, -1)
      expect(msg).toBe('err.lua:2: bad thing')
      const top = api.gettop(L)
      api.traceback(L, T, msg, 0)
      expect(api.gettop(L)).toBe(top + 1)
      const tb = api.tostring(L, -1) ?? ''
      expect(tb.startsWith('err.lua:2: bad thing\nstack traceback:\n')).toBe(true)
      expect(tb).toContain('err.lua:2: in ')
      expect(tb).toContain('inner')
      expect(tb).toContain('err.lua:5: in ')
      expect(tb).toContain('err.lua:7: in main chunk')
      api.pop(L, 1)
      api.traceback(L, T, undefined, 0)
      expect(api.tostring(L, -1)?.startsWith('stack traceback:\n')).toBe(true)
      api.pop(L, 1)
      // a dead thread cannot be resumed again
      expect(api.resume(T, L, 0)).toBe(LuaStatus.ERRRUN)
      expect(api.tostring(T, -1)).toBe('cannot resume dead coroutine')
    })

    it('has the integer width of its Lua', () => {
      expect(run(api, 'return math.maxinteger == 2147483647, math.maxinteger == 9223372036854775807')).toBe(2)
      expect(api.toboolean(L, 1)).toBe(name === 'fengari')
      expect(api.toboolean(L, 2)).toBe(name === 'wasmoon')
      api.settop(L, 0)

      // a safe integer beyond 32 bits: an integer on wasmoon, a float (same value) on fengari
      api.pushinteger(L, 2 ** 32 + 5)
      api.setglobal(L, 'big')
      expect(run(api, 'return math.type(big), big == 4294967301')).toBe(2)
      expect(api.tostring(L, 1)).toBe(name === 'fengari' ? 'float' : 'integer')
      expect(api.toboolean(L, 2)).toBe(true)
      api.settop(L, 0)
      api.getglobal(L, 'big')
      expect(api.tonumber(L, 1)).toBe(2 ** 32 + 5)
      expect(api.tointeger(L, 1)).toBe(name === 'fengari' ? undefined : 2 ** 32 + 5)
      api.settop(L, 0)
    })

    it('handles tables, metatables and misc calls', () => {
      expect(run(api, 'return setmetatable({}, {__tostring = function() return "T!" end}), {}, "x", 1')).toBe(4)
      expect(api.tostringmeta(L, 1)).toBe('T!')
      expect(api.tostringmeta(L, 2).startsWith('table: ')).toBe(true)
      expect(api.tostringmeta(L, 4)).toBe('1')
      expect(api.gettop(L)).toBe(4)
      expect(api.getmetatable(L, 1)).toBe(true)
      expect(api.getmetatable(L, 2)).toBe(false)
      api.pop(L, 1)
      expect(api.topointer(L, 1)).not.toBe(api.topointer(L, 2))
      api.pushvalue(L, 1)
      expect(api.topointer(L, -1)).toBe(api.topointer(L, 1))
      expect(api.rawequal(L, -1, 1)).toBe(true)
      expect(api.rawequal(L, 1, 2)).toBe(false)
      api.pop(L, 1)
      api.pushstring(L, 'first')
      api.insert(L, 1)
      expect(api.tostring(L, 1)).toBe('first')
      api.remove(L, 1)
      expect(api.tostring(L, 3)).toBe('x')
      api.settop(L, 0)

      api.createtable(L, 2, 0)
      api.pushinteger(L, 10)
      api.rawseti(L, 1, 1)
      api.pushinteger(L, 20)
      api.rawseti(L, 1, 2)
      expect(api.rawlen(L, 1)).toBe(2)
      let sum = 0
      api.pushnil(L)
      while (api.next(L, 1)) {
        sum += api.tointeger(L, -1) ?? 0
        api.pop(L, 1)
      }
      expect(sum).toBe(30)
      expect(api.rawgeti(L, 1, 2)).toBe(LuaType.NUMBER)
      expect(api.tointeger(L, -1)).toBe(20)
      api.settop(L, 0)

      api.newuserdata(L)
      expect(api.type(L, -1)).toBe(LuaType.USERDATA)
      api.settop(L, 0)
      expect(api.isnumber(L, 1)).toBe(false)
      api.pushstring(L, '12')
      expect(api.isnumber(L, 1)).toBe(true)
      expect(api.checkstack(L, 100)).toBe(true)
      api.settop(L, 0)

      // load errors leave the message
      expect(api.load(L, encoder.encode('return +'), '=bad')).toBe(LuaStatus.ERRSYNTAX)
      expect(api.tostring(L, -1)).toContain('bad:1:')
      api.settop(L, 0)
    })
  })
}
